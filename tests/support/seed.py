"""Raw-SQL seeding for schema tests: rows written straight through the tenant
unit of work, exactly as the database sees them (no service layer involved)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from shared.db.uow import TenantUnitOfWork


@dataclass(frozen=True)
class SeededProgramme:
    """A tenant with one evaluation, one programme of one version, one requirement."""

    tenant_id: uuid.UUID
    evaluation_id: uuid.UUID
    programme_id: uuid.UUID
    requirement_id: uuid.UUID


async def seed_programme(pool: asyncpg.Pool, tenant_id: uuid.UUID | None = None) -> SeededProgramme:
    """Create a tenant and a minimal published programme in it."""
    seeded = SeededProgramme(tenant_id or uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        conn = uow.connection
        await conn.execute("INSERT INTO tenants (id) VALUES ($1)", seeded.tenant_id)
        await conn.execute(
            "INSERT INTO evaluations (tenant_id, id, type, title) "
            "VALUES ($1, $2, 'knowledge', 'Safety Theory')",
            seeded.tenant_id,
            seeded.evaluation_id,
        )
        await conn.execute(
            "INSERT INTO programmes (tenant_id, id, key, created_by, updated_by) "
            "VALUES ($1, $2, 'safety', 'test', 'test')",
            seeded.tenant_id,
            seeded.programme_id,
        )
        await conn.execute(
            "INSERT INTO programme_versions (tenant_id, programme_id, version, name, definition,"
            " definition_hash, published_at, published_by)"
            " VALUES ($1, $2, 1, 'Safety', $3, 'h1', $4, 'test')",
            seeded.tenant_id,
            seeded.programme_id,
            {"requirements": []},
            datetime.now(UTC),
        )
        await conn.execute(
            "INSERT INTO programme_requirements (tenant_id, id, programme_id, version, key, name,"
            " evaluation_id, min_score, sort_order) VALUES ($1, $2, $3, 1, 'theory', 'Theory',"
            " $4, 80, 1)",
            seeded.tenant_id,
            seeded.requirement_id,
            seeded.programme_id,
            seeded.evaluation_id,
        )
        await uow.commit()
    return seeded


async def seed_enrolment(pool: asyncpg.Pool, seeded: SeededProgramme) -> uuid.UUID:
    """Enrol a learner on the seeded programme, with its pending progress row."""
    enrolment_id = uuid.uuid4()
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        conn = uow.connection
        await conn.execute(
            "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
            " snapshot, enrolled_at, created_by_event_id)"
            " VALUES ($1, $2, $3, $4, 1, $5, now(), $6)",
            seeded.tenant_id,
            enrolment_id,
            uuid.uuid4(),
            seeded.programme_id,
            json.loads('{"requirements": []}'),
            uuid.uuid4(),
        )
        await conn.execute(
            "INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id,"
            " programme_version) VALUES ($1, $2, $3, $4, 1)",
            seeded.tenant_id,
            enrolment_id,
            seeded.requirement_id,
            seeded.programme_id,
        )
        await uow.commit()
    return enrolment_id


async def seed_every_table(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> None:
    """At least one row in every tenant table, for isolation properties."""
    seeded = await seed_programme(pool, tenant_id)
    enrolment_id = await seed_enrolment(pool, seeded)
    submission_id, event_id = uuid.uuid4(), uuid.uuid4()
    async with TenantUnitOfWork(pool, tenant_id, actor_role="admin") as uow:
        conn = uow.connection
        second = uuid.uuid4()
        await conn.execute(
            "INSERT INTO programme_elective_groups (tenant_id, programme_id, version, key, name,"
            " min_met) VALUES ($1, $2, 1, 'electives', 'Electives', 1)",
            tenant_id,
            seeded.programme_id,
        )
        await conn.execute(
            "INSERT INTO programme_requirements (tenant_id, id, programme_id, version, key, name,"
            " evaluation_id, min_score, is_mandatory, elective_group, sort_order)"
            " VALUES ($1, $2, $3, 1, 'extra', 'Extra', $4, NULL, false, 'electives', 2)",
            tenant_id,
            second,
            seeded.programme_id,
            seeded.evaluation_id,
        )
        await conn.execute(
            "INSERT INTO requirement_prerequisites (tenant_id, programme_id, version,"
            " requirement_id, prerequisite_id) VALUES ($1, $2, 1, $3, $4)",
            tenant_id,
            seeded.programme_id,
            second,
            seeded.requirement_id,
        )
        await conn.execute(
            "INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,"
            " submitted_at, event_id) VALUES ($1, $2, $3, $4, $5, now(), $6)",
            tenant_id,
            submission_id,
            uuid.uuid4(),
            uuid.uuid4(),
            seeded.evaluation_id,
            event_id,
        )
        await conn.execute(
            "INSERT INTO submission_scores (tenant_id, submission_id, score_version, score,"
            " effective_at, event_id) VALUES ($1, $2, 1, 90, now(), $3)",
            tenant_id,
            submission_id,
            event_id,
        )
        await conn.execute(
            "INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,"
            " previous_status, reason, submission_id, score_version, score, attempt_count,"
            " event_id, event_type, decided_at) VALUES ($1, $2, $3, 1, 'met', 'pending',"
            " 'submission_met', $4, 1, 90, 1, $5, 'submission.created', now())",
            tenant_id,
            enrolment_id,
            seeded.requirement_id,
            submission_id,
            event_id,
        )
        await conn.execute(
            "UPDATE progress SET status = 'met', submission_id = $3, score_version = 1,"
            " score = 90, attempt_count = 1, completed_at = now(), decision_seq = 1"
            " WHERE enrolment_id = $1 AND requirement_id = $2",
            enrolment_id,
            seeded.requirement_id,
            submission_id,
        )
        await conn.execute(
            "INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id,"
            " idempotency_key, evaluation_id) VALUES ($1, $2, $3, $4, $5, $6)",
            tenant_id,
            enrolment_id,
            seeded.requirement_id,
            uuid.uuid4(),
            uuid.uuid4().hex,
            seeded.evaluation_id,
        )
        await conn.execute(
            "INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, programme_id,"
            " programme_version, issued_at, public_token, completion_event_id)"
            " VALUES ($1, $2, $3, $4, $5, 1, now(), $6, $7)",
            tenant_id,
            uuid.uuid4(),
            enrolment_id,
            uuid.uuid4(),
            seeded.programme_id,
            uuid.uuid4().hex,
            uuid.uuid4(),
        )
        await conn.execute(
            "INSERT INTO inbox (tenant_id, consumer, event_id, event_type)"
            " VALUES ($1, 'test', $2, 'submission.created')",
            tenant_id,
            event_id,
        )
        await conn.execute(
            "INSERT INTO outbox (tenant_id, topic, event_id, event) VALUES ($1, 't', $2, '{}')",
            tenant_id,
            uuid.uuid4(),
        )
        await conn.execute(
            "INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status,"
            " previous_status, reason, event_id, event_type, decided_at)"
            " VALUES ($1, $2, 1, 'completed', 'in_progress', 'complete', $3,"
            " 'submission.created', now())",
            tenant_id,
            enrolment_id,
            event_id,
        )
        await uow.commit()
