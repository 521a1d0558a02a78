"""Rules of the ledger and definitions that the database enforces by itself."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.db.uow import SET_TENANT, TenantUnitOfWork
from tests.support.seed import seed_enrolment, seed_every_table, seed_programme


async def test_progress_history_and_score_versions_are_append_only(pool: asyncpg.Pool) -> None:
    tenant = uuid.uuid4()
    await seed_every_table(pool, tenant)
    for statement in (
        "UPDATE progress_history SET reason = 'rewritten'",
        "DELETE FROM progress_history",
        "UPDATE submission_scores SET score = 0",
        "DELETE FROM submission_scores",
    ):
        async with TenantUnitOfWork(pool, tenant) as uow:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await uow.connection.execute(statement)


async def test_met_evidence_cannot_be_overwritten_without_a_history_entry(
    pool: asyncpg.Pool,
) -> None:
    tenant = uuid.uuid4()
    await seed_every_table(pool, tenant)  # leaves one progress row 'met' at decision 1
    async with TenantUnitOfWork(pool, tenant) as uow:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="history"):
            await uow.connection.execute(
                "UPDATE progress SET submission_id = $1 WHERE status = 'met'", uuid.uuid4()
            )
    async with TenantUnitOfWork(pool, tenant) as uow:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="history"):
            await uow.connection.execute(
                "UPDATE progress SET status = 'pending', submission_id = NULL,"
                " score_version = NULL, score = NULL, decision_seq = 2 WHERE status = 'met'"
            )


async def _met_row(pool: asyncpg.Pool) -> tuple[uuid.UUID, asyncpg.Record]:
    """A seeded tenant and its progress row that is 'met' at decision 1."""
    tenant = uuid.uuid4()
    await seed_every_table(pool, tenant)
    async with TenantUnitOfWork(pool, tenant) as uow:
        row = await uow.connection.fetchrow("SELECT * FROM progress WHERE status = 'met'")
    assert row is not None
    return tenant, row


async def test_evidence_changes_with_a_matching_history_entry(pool: asyncpg.Pool) -> None:
    tenant, row = await _met_row(pool)
    async with TenantUnitOfWork(pool, tenant) as uow:
        conn = uow.connection
        await conn.execute(
            "INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,"
            " previous_status, reason, attempt_count, event_id, event_type, decided_at)"
            " VALUES ($1, $2, $3, 2, 'pending', 'met', 'remediation_lowered', 1, $4,"
            " 'score.remediated', now())",
            tenant,
            row["enrolment_id"],
            row["requirement_id"],
            uuid.uuid4(),
        )
        await conn.execute(
            "UPDATE progress SET status = 'pending', submission_id = NULL, score_version = NULL,"
            " score = NULL, completed_at = NULL, decision_seq = 2"
            " WHERE enrolment_id = $1 AND requirement_id = $2",
            row["enrolment_id"],
            row["requirement_id"],
        )
        await uow.commit()


_HISTORY_AND_PROGRESS = (
    # One statement, as a batch writes them: the history entry in a sibling CTE.
    "WITH decided AS ("
    " INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,"
    " previous_status, reason, attempt_count, event_id, event_type, decided_at)"
    " VALUES ($1, $2, $3, 2, $4, 'met', 'remediation_lowered', 1, $5, 'score.remediated', now()))"
    " UPDATE progress SET status = 'pending', submission_id = NULL, score_version = NULL,"
    " score = NULL, completed_at = NULL, decision_seq = 2"
    " WHERE enrolment_id = $2 AND requirement_id = $3"
)


@pytest.mark.parametrize("recorded", ["pending", "failed"])
async def test_a_history_entry_written_by_the_same_statement_is_evidence_if_it_matches(
    pool: asyncpg.Pool, recorded: str
) -> None:
    tenant, row = await _met_row(pool)
    async with TenantUnitOfWork(pool, tenant) as uow:
        conn = uow.connection
        args = (tenant, row["enrolment_id"], row["requirement_id"], recorded, uuid.uuid4())
        if recorded == "pending":
            await conn.execute(_HISTORY_AND_PROGRESS, *args)
            await uow.commit()
        else:  # the entry records another state than the row is given
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="history"):
                await conn.execute(_HISTORY_AND_PROGRESS, *args)
    async with TenantUnitOfWork(pool, tenant) as uow:
        status = await uow.connection.fetchval(
            "SELECT status FROM progress WHERE enrolment_id = $1 AND requirement_id = $2",
            row["enrolment_id"],
            row["requirement_id"],
        )
    assert status == ("pending" if recorded == "pending" else "met")


async def test_a_progress_row_never_changes_requirement(pool: asyncpg.Pool) -> None:
    seeded = await seed_programme(pool)
    enrolment_id = await seed_enrolment(pool, seeded)  # a pending row, no history yet
    other = uuid.uuid4()  # another requirement of the same version: every reference holds
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        await uow.connection.execute(
            "INSERT INTO programme_requirements (tenant_id, id, programme_id, version, key, name,"
            " evaluation_id, min_score, sort_order) VALUES ($1, $2, $3, 1, 'other', 'Other',"
            " $4, 50, 2)",
            seeded.tenant_id,
            other,
            seeded.programme_id,
            seeded.evaluation_id,
        )
        await uow.commit()
    async with TenantUnitOfWork(pool, seeded.tenant_id) as uow:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="never change"):
            await uow.connection.execute(
                "UPDATE progress SET requirement_id = $1 WHERE enrolment_id = $2",
                other,
                enrolment_id,
            )


async def test_a_programme_with_enrolments_can_be_archived_not_deleted(
    pool: asyncpg.Pool,
) -> None:
    seeded = await seed_programme(pool)
    await seed_enrolment(pool, seeded)
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        with pytest.raises(asyncpg.RestrictViolationError, match="archive it instead"):
            await uow.connection.execute("DELETE FROM programmes")
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        await uow.connection.execute(
            "UPDATE programmes SET status = 'archived', archived_at = now()"
        )
        await uow.commit()


async def test_a_programme_without_enrolments_can_be_deleted(pool: asyncpg.Pool) -> None:
    seeded = await seed_programme(pool)
    async with TenantUnitOfWork(pool, seeded.tenant_id, actor_role="admin") as uow:
        assert await uow.connection.execute("DELETE FROM programmes") == "DELETE 1"
        await uow.commit()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE programme_versions SET name = 'changed'",
        "UPDATE programme_requirements SET min_score = 1",
        "UPDATE programme_elective_groups SET min_met = 9",
        "UPDATE requirement_prerequisites SET version = version",
    ],
)
async def test_published_definitions_are_immutable_for_services_and_owner(
    pool: asyncpg.Pool, owner_connection: asyncpg.Connection, statement: str
) -> None:
    tenant = uuid.uuid4()
    await seed_every_table(pool, tenant)
    async with TenantUnitOfWork(pool, tenant) as uow:  # no UPDATE privilege at all
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await uow.connection.execute(statement)
    async with owner_connection.transaction():  # the owner may, but the trigger refuses
        await owner_connection.execute(SET_TENANT, str(tenant))
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner_connection.execute(statement)


async def test_one_renewal_per_enrolment(pool: asyncpg.Pool) -> None:
    seeded = await seed_programme(pool)
    original = await seed_enrolment(pool, seeded)
    insert = (
        "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
        " snapshot, enrolled_at, created_by_event_id, renewal_of_enrolment_id)"
        " VALUES ($1, $2, $3, $4, 1, '{}', now(), $5, $6)"
    )
    async with TenantUnitOfWork(pool, seeded.tenant_id) as uow:
        args = (seeded.tenant_id, uuid.uuid4(), uuid.uuid4(), seeded.programme_id, uuid.uuid4())
        await uow.connection.execute(insert, *args, original)
        with pytest.raises(asyncpg.UniqueViolationError):
            await uow.connection.execute(
                insert,
                seeded.tenant_id,
                uuid.uuid4(),
                uuid.uuid4(),
                seeded.programme_id,
                uuid.uuid4(),
                original,
            )
