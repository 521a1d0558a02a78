"""Fast seeding, straight into a database copy as the services' role under each
tenant (row-level security applies): set-based statements over unnest arrays,
thousands of rows each, so a full run is spent measuring, not seeding.

The programme itself is published through the definitions service
(tests/support/programmes.py): the sample programme without prerequisites, so
every requirement is assigned from the start.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from bench.stack import Stack, connect
from shared.db.pool import create_pool
from shared.ids import assignment_idempotency_key
from shared.settings import Settings
from tests.support.certificates import seed_many_certified
from tests.support.programmes import Sample, publish_sample

CHUNK = 20_000  # enrolments per statement (and transaction)
# The tenant for the whole session of a seeding connection (the services set it
# per transaction; RLS reads the same setting).
SESSION_TENANT = "SELECT set_config('app.tenant_id', $1, false)"


@dataclass(frozen=True)
class Requirement:
    id: uuid.UUID
    key: str
    evaluation_id: uuid.UUID


@dataclass(frozen=True)
class Learner:
    """An enrolment whose every requirement has a created (linked) assignment."""

    tenant_id: uuid.UUID
    enrolment_id: uuid.UUID
    user_id: uuid.UUID
    assignments: dict[str, tuple[uuid.UUID, uuid.UUID]]  # key -> (assignment, evaluation)


async def programmes(url: str, tenants: int) -> list[Sample]:
    """`tenants` tenants, each with the sample programme published."""
    pool = await create_pool(Settings(database_url=url, db_pool_max_size=2))
    try:
        return [await publish_sample(pool, prerequisites=False) for _ in range(tenants)]
    finally:
        await pool.close()


async def _requirements(conn: asyncpg.Connection, sample: Sample) -> list[Requirement]:
    rows = await conn.fetch(
        "SELECT id, key, evaluation_id FROM programme_requirements"
        " WHERE programme_id = $1 AND version = $2 ORDER BY sort_order",
        sample.programme_id,
        sample.version,
    )
    return [Requirement(r["id"], r["key"], r["evaluation_id"]) for r in rows]


_ENROLMENTS = """
INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version, status,
                        snapshot, user_display_name, enrolled_at, completed_at,
                        created_by_event_id)
SELECT app_current_tenant(), t.e, t.u, $3, $4, $6::text, v.definition, 'Ada Lovelace',
       $5::timestamptz, CASE WHEN $6::text = 'completed' THEN $5::timestamptz END,
       gen_random_uuid()
FROM unnest($1::uuid[], $2::uuid[]) AS t (e, u),
     (SELECT definition FROM programme_versions WHERE programme_id = $3 AND version = $4) AS v
"""
_PROGRESS = """
INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id, programme_version)
SELECT app_current_tenant(), e, r.id, $2, $3
FROM unnest($1::uuid[]) AS e
CROSS JOIN programme_requirements r WHERE r.programme_id = $2 AND r.version = $3
"""
_ASSIGNMENTS = """
INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id, idempotency_key,
                         evaluation_id, status, assignment_id, requested_at, created_at)
SELECT app_current_tenant(), e, r, u, k, ev, 'created', a, $7, $7
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::uuid[])
     AS t (e, r, u, k, ev, a)
"""


async def linked_enrolments(
    url: str, sample: Sample, count: int, enrolled_at: datetime
) -> list[Learner]:
    """`count` in-progress enrolments of `sample`'s tenant, pending progress rows and a
    created assignment per requirement (as if the delivery engine had answered)."""
    conn = await connect(url)
    learners: list[Learner] = []
    try:
        await conn.execute(SESSION_TENANT, str(sample.tenant_id))
        requirements = await _requirements(conn, sample)
        for start in range(0, count, CHUNK):
            chunk = [
                Learner(
                    sample.tenant_id,
                    uuid.uuid4(),
                    uuid.uuid4(),
                    {r.key: (uuid.uuid4(), r.evaluation_id) for r in requirements},
                )
                for _ in range(min(CHUNK, count - start))
            ]
            async with conn.transaction():
                await _insert_learners(conn, sample, requirements, chunk, enrolled_at)
            learners.extend(chunk)
    finally:
        await conn.close()
    return learners


async def _insert_learners(
    conn: asyncpg.Connection,
    sample: Sample,
    requirements: list[Requirement],
    chunk: list[Learner],
    at: datetime,
) -> None:
    enrolments = [x.enrolment_id for x in chunk]
    users = [x.user_id for x in chunk]
    args = (sample.programme_id, sample.version, at, "in_progress")
    await conn.execute(_ENROLMENTS, enrolments, users, *args)
    await conn.execute(_PROGRESS, enrolments, sample.programme_id, sample.version)
    links = [(x, r) for x in chunk for r in requirements]
    await conn.execute(
        _ASSIGNMENTS,
        [x.enrolment_id for x, _ in links],
        [r.id for _, r in links],
        [x.user_id for x, _ in links],
        [
            assignment_idempotency_key(sample.tenant_id, x.enrolment_id, r.id, x.user_id)
            for x, r in links
        ],
        [r.evaluation_id for _, r in links],
        [x.assignments[r.key][0] for x, r in links],
        at,
    )


async def completed_enrolments(
    url: str, sample: Sample, count: int, completed_at: datetime
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """`count` enrolments completed at `completed_at` and not yet certified;
    returns their (enrolment, user) ids."""
    conn = await connect(url)
    done: list[tuple[uuid.UUID, uuid.UUID]] = []
    try:
        await conn.execute(SESSION_TENANT, str(sample.tenant_id))
        for start in range(0, count, CHUNK):
            chunk = [(uuid.uuid4(), uuid.uuid4()) for _ in range(min(CHUNK, count - start))]
            async with conn.transaction():
                await conn.execute(
                    _ENROLMENTS,
                    [e for e, _ in chunk],
                    [u for _, u in chunk],
                    sample.programme_id,
                    sample.version,
                    completed_at,
                    "completed",
                )
            done.extend(chunk)
    finally:
        await conn.close()
    return done


async def certificates(
    url: str, sample: Sample, count: int, *, first_issued_at: datetime, spacing: timedelta
) -> None:
    """`count` certified enrolments with active certificates, issued `spacing` apart
    (tests/support/certificates.seed_many_certified, 100,000 per statement)."""
    pool = await create_pool(Settings(database_url=url, db_pool_max_size=1))
    try:
        step = 100_000
        for start in range(0, count, step):
            await seed_many_certified(
                pool,
                sample,
                min(step, count - start),
                first_issued_at=first_issued_at + start * spacing,
                spacing=spacing,
            )
    finally:
        await pool.close()


# A previous cohort's record: submissions with their first score, before `before`.
_PAST_SUBMISSIONS = """
WITH s AS (
    INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,
                             submitted_at, event_id)
    SELECT app_current_tenant(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
           gen_random_uuid(), $2::timestamptz - i * interval '1 second', gen_random_uuid()
    FROM generate_series(1, $1) AS i
    RETURNING id, submitted_at
)
INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                               effective_at, event_id)
SELECT app_current_tenant(), s.id, 1, 80, true, s.submitted_at, gen_random_uuid() FROM s
"""


async def past(
    stack: Stack, database: str, samples: Sequence[Sample], learners: int, before: datetime
) -> None:
    """Give a seeded database the past of a service that has been running: a previous
    cohort of `learners` per tenant, all before `before` (certified enrolments with
    their certificates, four scored submissions each), then ANALYZE, as autovacuum
    would have done. Without it, the tables a run writes to start empty and
    unanalysed, and a run measures a fresh installation's first minute: plans made
    from the statistics of empty tables read a batch's rows by filtering every row
    of its tenant (docs/adr/0016-benchmark-databases-have-a-past.md)."""
    url = stack.conns.app(database)
    for sample in samples:
        await _cohort(url, sample, learners, before)
    await stack.analyse(database)


async def _cohort(url: str, sample: Sample, learners: int, before: datetime) -> None:
    await certificates(
        url,
        sample,
        learners,
        first_issued_at=before - learners * timedelta(minutes=1),
        spacing=timedelta(minutes=1),
    )
    conn = await connect(url)
    try:
        await conn.execute(SESSION_TENANT, str(sample.tenant_id))
        rows = 4 * learners
        for start in range(0, rows, 4 * CHUNK):
            async with conn.transaction():
                await conn.execute(_PAST_SUBMISSIONS, min(4 * CHUNK, rows - start), before)
    finally:
        await conn.close()


async def tokens(url: str, sample: Sample, limit: int) -> list[str]:
    """Public tokens of `sample`'s tenant's certificates."""
    conn = await connect(url)
    try:
        await conn.execute(SESSION_TENANT, str(sample.tenant_id))
        rows = await conn.fetch("SELECT public_token FROM certificates LIMIT $1", limit)
    finally:
        await conn.close()
    return [r["public_token"] for r in rows]


async def count(url: str, samples: Sequence[Sample], sql: str, *args: object) -> int:
    """The sum over `samples`' tenants of a `SELECT count(*) ...` (with `args` as its
    parameters) seen as each."""
    conn = await connect(url)
    total = 0
    try:
        for sample in samples:
            await conn.execute(SESSION_TENANT, str(sample.tenant_id))
            total += await conn.fetchval(sql, *args)
    finally:
        await conn.close()
    return total
