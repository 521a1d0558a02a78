"""The benchmark's databases have a past (`bench.seed.past`, ADR 0016): a previous
cohort, all before the runs' T0, and statistics on the tables that hold rows, as on a
server autovacuum has been looking after. With them, the orchestrator's batch load
reads a batch's submissions by key even after a run has added half as many again; from
the statistics of an almost empty table, the same load filters every row of the
tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bench import seed
from bench.context import T0
from bench.stack import Connections, Stack
from shared.db.uow import SET_TENANT
from tests.support.programmes import Sample
from tests.support.services import Services

LEARNERS = 500  # 2,000 submissions
LOAD = "SELECT kind, id FROM working_set_load($1::uuid[], $2::uuid[])"
ROWS_READ = (
    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
    " FROM pg_stat_xact_user_tables WHERE relname = 'submissions'"
)
ADD = (
    "INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,"
    " submitted_at, event_id) SELECT app_current_tenant(), gen_random_uuid(),"
    " gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), $2, gen_random_uuid()"
    " FROM generate_series(1, $1) RETURNING id"
)


@pytest.fixture
async def stack(services: Services) -> AsyncIterator[Stack]:
    stack = Stack(
        Connections(
            kafka=services.kafka_bootstrap_servers,
            admin_url=services.admin_url,
            app_url=services.app_url,
            owner_url=services.owner_url,
        )
    )
    try:
        yield stack
    finally:
        await stack.close()


async def _seeded(stack: Stack) -> tuple[str, Sample]:
    database = await stack.copy(await stack.migrated_template(), "history")
    (sample,) = await seed.programmes(stack.conns.app(database), 1)
    return database, sample


async def _rows_read_by_a_load_after_growth(url: str, tenant: uuid.UUID, grown_by: int) -> int:
    """Run the load until PL/pgSQL keeps its generic plans, let the table grow, and
    count the `submissions` rows a load of five stored submissions then reads."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(8):  # past the five custom plans after which a generic one is kept
            async with conn.transaction():
                await conn.execute(SET_TENANT, str(tenant))
                await conn.fetch(LOAD, [uuid.uuid4()], [uuid.uuid4()])
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant))
            added = [r["id"] for r in await conn.fetch(ADD, grown_by, T0)]
        batch = added[:: len(added) // 5][:5]
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant))
            before = await conn.fetchval(ROWS_READ)
            rows = await conn.fetch(LOAD, batch, [])
            read: int = await conn.fetchval(ROWS_READ) - before
    finally:
        await conn.close()
    assert {r["id"] for r in rows if r["kind"] == "submission"} == set(batch)
    return read


async def test_a_past_is_a_previous_cohort_before_t0_with_statistics(stack: Stack) -> None:
    database, sample = await _seeded(stack)
    await seed.past(stack, database, [sample], LEARNERS, T0)

    conn = await asyncpg.connect(stack.conns.app(database))
    try:
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(sample.tenant_id))
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM submissions WHERE submitted_at < $1) AS submissions,"
                " (SELECT count(*) FROM submission_scores WHERE effective_at < $1) AS scores,"
                " (SELECT count(*) FROM certificates WHERE issued_at < $1) AS certificates,"
                " (SELECT count(*) FROM enrolments WHERE completed_at < $1) AS certified,"
                " (SELECT count(*) FROM submissions WHERE submitted_at >= $1) AS in_a_run",
                T0,
            )
        # reltuples: what the last ANALYZE counted; -1 for a table never analysed. (The
        # services' role cannot read pg_stats of tables under row-level security.)
        tuples: dict[str, float] = {
            row["relname"]: row["reltuples"]
            for row in await conn.fetch(
                "SELECT relname, reltuples FROM pg_class WHERE relname IN"
                " ('submissions', 'certificates', 'progress_history', 'outbox')"
            )
        }
    finally:
        await conn.close()
    assert counts is not None and dict(counts) == {
        "submissions": 4 * LEARNERS,
        "scores": 4 * LEARNERS,
        "certificates": LEARNERS,
        "certified": LEARNERS,
        "in_a_run": 0,
    }
    # The tables that hold rows were analysed. Those no row was written to were left
    # unanalysed, as autovacuum leaves them: the planner then assumes ten pages, not an
    # empty table that stays empty.
    assert tuples == {
        "submissions": 4 * LEARNERS,
        "certificates": LEARNERS,
        "progress_history": -1,
        "outbox": -1,
    }


async def test_with_a_past_the_load_reads_by_key_as_the_run_adds_rows(stack: Stack) -> None:
    database, sample = await _seeded(stack)
    await seed.past(stack, database, [sample], LEARNERS, T0)
    url = stack.conns.app(database)

    read = await _rows_read_by_a_load_after_growth(url, sample.tenant_id, 2 * LEARNERS)

    # A few index probes per id (the submission, its assignment's attempts, the probe
    # for other tenants' ids), not the tenant's 3,000 rows.
    assert read <= 10 * 5, read


async def test_without_one_the_load_filters_the_whole_tenant(stack: Stack) -> None:
    """What ADR 0016 keeps out of the figures: statistics taken when the table held
    ten rows make the same load read every row of the tenant."""
    database, sample = await _seeded(stack)
    url = stack.conns.app(database)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(sample.tenant_id))
            await conn.fetch(ADD, 10, T0)
    finally:
        await conn.close()
    await stack.analyse(database)

    read = await _rows_read_by_a_load_after_growth(url, sample.tenant_id, 2 * LEARNERS)

    assert read >= 2 * LEARNERS, read
