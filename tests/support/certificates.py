"""Certified enrolments with active certificates, written straight through the
tenant unit of work (as the certifier would leave them), for the renewer's tests
and benchmarks."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from shared.db.pool import Connection
from shared.db.uow import TenantUnitOfWork
from shared.ids import assignment_idempotency_key
from tests.support.programmes import Sample


@dataclass(frozen=True)
class SeededCertificate:
    """A certified enrolment and its active certificate."""

    tenant_id: uuid.UUID
    programme_id: uuid.UUID
    enrolment_id: uuid.UUID
    certificate_id: uuid.UUID
    user_id: uuid.UUID
    org_unit_id: uuid.UUID | None
    public_token: str
    issued_at: datetime
    expires_at: datetime | None


async def seed_certified(
    pool: asyncpg.Pool,
    sample: Sample,
    *,
    issued_at: datetime,
    version: int = 1,
    display_name: str | None = "Ada Lovelace",
    org_unit_id: uuid.UUID | None = None,
) -> SeededCertificate:
    """A learner who met every requirement of `version` (ledger rows and created
    assignments included) and holds the certificate issued at `issued_at`, expiring
    after the version's validity period."""
    enrolment_id, certificate_id, user_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = secrets.token_urlsafe(24)
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        conn = uow.connection
        await conn.execute(
            "INSERT INTO enrolments (tenant_id, id, user_id, org_unit_id, programme_id,"
            " programme_version, status, snapshot, user_display_name, enrolled_at, completed_at,"
            " certified_at, created_by_event_id)"
            " SELECT app_current_tenant(), $1, $2, $3, $4, $5, 'certified', v.definition, $6,"
            " $7::timestamptz - interval '30 days', $7, $7, gen_random_uuid()"
            " FROM programme_versions v WHERE v.programme_id = $4 AND v.version = $5",
            enrolment_id,
            user_id,
            org_unit_id,
            sample.programme_id,
            version,
            display_name,
            issued_at,
        )
        await _met_ledger(conn, sample, enrolment_id, user_id, version, issued_at)
        expires_at = await conn.fetchval(
            "INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, org_unit_id,"
            " programme_id, programme_version, issued_at, expires_at, public_token,"
            " holder_display_name, completion_event_id)"
            " SELECT app_current_tenant(), $1, $2, $3, $4, $5, $6, $7::timestamptz,"
            " $7::timestamptz + v.validity_period,"
            " $8, $9, gen_random_uuid()"
            " FROM programme_versions v WHERE v.programme_id = $5 AND v.version = $6"
            " RETURNING expires_at",
            certificate_id,
            enrolment_id,
            user_id,
            org_unit_id,
            sample.programme_id,
            version,
            issued_at,
            token,
            display_name,
        )
        await uow.commit()
    return SeededCertificate(
        sample.tenant_id,
        sample.programme_id,
        enrolment_id,
        certificate_id,
        user_id,
        org_unit_id,
        token,
        issued_at,
        expires_at,
    )


async def _met_ledger(
    conn: Connection,
    sample: Sample,
    enrolment_id: uuid.UUID,
    user_id: uuid.UUID,
    version: int,
    met_at: datetime,
) -> None:
    requirements = await conn.fetch(
        "SELECT id, evaluation_id FROM programme_requirements"
        " WHERE programme_id = $1 AND version = $2",
        sample.programme_id,
        version,
    )
    for requirement in requirements:
        await conn.execute(
            "INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id,"
            " programme_version, status, submission_id, score_version, score, attempt_count,"
            " completed_at) VALUES (app_current_tenant(), $1, $2, $3, $4, 'met',"
            " gen_random_uuid(), 1, 90, 1, $5)",
            enrolment_id,
            requirement["id"],
            sample.programme_id,
            version,
            met_at,
        )
        await conn.execute(
            "INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id,"
            " idempotency_key, evaluation_id, status, assignment_id, created_at)"
            " VALUES (app_current_tenant(), $1, $2, $3, $4, $5, 'created', gen_random_uuid(),"
            " $6)",
            enrolment_id,
            requirement["id"],
            user_id,
            assignment_idempotency_key(sample.tenant_id, enrolment_id, requirement["id"], user_id),
            requirement["evaluation_id"],
            met_at,
        )


async def seed_many_certified(
    pool: asyncpg.Pool,
    sample: Sample,
    count: int,
    *,
    first_issued_at: datetime,
    spacing: timedelta,
    version: int = 1,
) -> None:
    """`count` certified enrolments with active certificates (no ledger rows), issued
    `spacing` apart from `first_issued_at`: one statement, for volume."""
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        await uow.connection.execute(
            "WITH v AS (SELECT definition, validity_period FROM programme_versions"
            "           WHERE programme_id = $1 AND version = $2),"
            " e AS (INSERT INTO enrolments (tenant_id, id, user_id, programme_id,"
            "       programme_version, status, snapshot, user_display_name, enrolled_at,"
            "       completed_at, certified_at, created_by_event_id)"
            "     SELECT app_current_tenant(), gen_random_uuid(), gen_random_uuid(), $1, $2,"
            "       'certified', v.definition, 'Learner ' || i, at, at, at, gen_random_uuid()"
            "     FROM generate_series(0, $5 - 1) AS i, v,"
            "       LATERAL (SELECT $3::timestamptz + i * $4::interval AS at) AS t"
            "     RETURNING id, user_id, completed_at)"
            " INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, programme_id,"
            "   programme_version, issued_at, expires_at, public_token, completion_event_id)"
            " SELECT app_current_tenant(), gen_random_uuid(), e.id, e.user_id, $1, $2,"
            "   e.completed_at, e.completed_at + v.validity_period,"
            "   translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),"
            "     'base64'), '+/=', '-_'),"
            "   gen_random_uuid()"
            " FROM e, v",
            sample.programme_id,
            version,
            first_issued_at,
            spacing,
            count,
        )
        await uow.commit()
