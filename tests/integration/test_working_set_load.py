"""The batch load (`working_set_load`) reads what a lock protects only after taking
the lock: a batch that waited for another transaction's lock sees what that
transaction committed, as the separate lock and read statements did."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from shared.db.uow import TenantUnitOfWork
from tests.support.seed import seed_programme

LOAD = "SELECT kind, id, assignment_id FROM working_set_load($1::uuid[], $2::uuid[])"
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
INSERT = (
    "INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,"
    " submitted_at, event_id) VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6)"
)


async def _blocked(task: asyncio.Task[object], conn: asyncpg.Connection) -> bool:
    """Whether `task`'s backend is waiting for an advisory lock."""
    for _ in range(100):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        if waiting:
            return True
        if task.done():
            return False
        await asyncio.sleep(0.02)
    return False


async def test_a_batch_waiting_for_a_submission_lock_sees_what_its_holder_committed(
    pool: asyncpg.Pool, owner_connection: asyncpg.Connection
) -> None:
    tenant = (await seed_programme(pool)).tenant_id
    submission, assignment = uuid.uuid4(), uuid.uuid4()

    async with TenantUnitOfWork(pool, tenant) as holder:
        # The one-message path's lock, held while the submission is written.
        await holder.connection.execute(LOCK, f"submission:{submission}")
        await holder.connection.execute(
            INSERT,
            submission,
            assignment,
            uuid.uuid4(),
            uuid.uuid4(),
            datetime(2026, 3, 1, tzinfo=UTC),
            uuid.uuid4(),
        )

        async def load() -> list[asyncpg.Record]:
            async with TenantUnitOfWork(pool, tenant) as batch:
                return list(await batch.connection.fetch(LOAD, [submission], []))

        loading = asyncio.create_task(load())
        assert await _blocked(loading, owner_connection), "the load did not wait for the lock"
        await holder.commit()

    rows = await asyncio.wait_for(loading, timeout=10)
    found = {(row["kind"], row["id"]) for row in rows}
    assert ("submission", submission) in found
    # The stored submission's assignment was locked and read too: its attempt is there.
    attempts = [row for row in rows if row["kind"] == "attempt"]
    assert [row["assignment_id"] for row in attempts] == [assignment]


async def test_ids_of_another_tenant_are_named_not_read(pool: asyncpg.Pool) -> None:
    ours, theirs = (await seed_programme(pool)).tenant_id, (await seed_programme(pool)).tenant_id
    submission = uuid.uuid4()
    async with TenantUnitOfWork(pool, theirs) as other:
        await other.connection.execute(
            INSERT,
            submission,
            uuid.uuid4(),
            uuid.uuid4(),
            uuid.uuid4(),
            datetime(2026, 3, 1, tzinfo=UTC),
            uuid.uuid4(),
        )
        await other.commit()

    async with TenantUnitOfWork(pool, ours) as batch:
        rows = await batch.connection.fetch(LOAD, [submission], [])
    assert [(row["kind"], row["id"], row["assignment_id"]) for row in rows] == [
        ("foreign_submission", submission, None)
    ]
