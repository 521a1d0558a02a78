"""Raw ceilings, measured in the same run on the same servers: what aiokafka can
consume and commit doing no work, and what PostgreSQL takes of the ledger's
simplest write (a progress-row upsert, as programmes_app under row-level
security with the tenant set), one row per transaction and batched."""

from __future__ import annotations

import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.context import Context
from bench.kafka import produce
from bench.stack import connect, scratch, topics
from shared.messaging.clients import connected

_UPSERT = """
INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id, programme_version)
VALUES (app_current_tenant(), $1, $2, $3, $4)
ON CONFLICT (tenant_id, enrolment_id, requirement_id)
DO UPDATE SET attempt_count = progress.attempt_count + 1, last_updated_at = now()
"""
_UPSERT_MANY = """
INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id, programme_version)
SELECT app_current_tenant(), e, r, p, v
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[]) AS t (e, r, p, v)
ON CONFLICT (tenant_id, enrolment_id, requirement_id)
DO UPDATE SET attempt_count = progress.attempt_count + 1, last_updated_at = now()
"""
SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
BATCH = 1_000

Key = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]


async def ceiling(ctx: Context) -> None:
    """Both ceilings, `runs` times each."""
    source = await ctx.submissions()
    for run in range(ctx.runs):
        async with topics(ctx.stack, "ceil", ctx.sizes.partitions) as prefix:
            topic = f"{prefix}submission.created"
            count, _ = await produce(
                ctx.stack.conns.kafka, topic, source.messages[: ctx.sizes.events]
            )
            ctx.results.add("kafka", await consume_and_commit(ctx, topic, prefix, count))
        async with scratch(ctx.stack, source.database, f"ceil{run}") as database:
            tenant = source.samples[0].tenant_id
            conn = await connect(ctx.stack.conns.app(database))
            try:
                keys = await _progress_keys(conn, tenant)
                ctx.results.add(
                    "pg_row", await upsert_rows(conn, tenant, keys, ctx.sizes.pg_single_rows)
                )
                ctx.results.add(
                    "pg_batch", await upsert_batches(conn, tenant, keys, ctx.sizes.pg_rows)
                )
            finally:
                await conn.close()


async def consume_and_commit(ctx: Context, topic: str, prefix: str, count: int) -> float:
    """events/s of one aiokafka consumer reading `count` records and committing
    after every fetched batch; timed from the first record to the last commit."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=ctx.stack.conns.kafka,
        group_id=f"{prefix}bench-ceiling",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen, started = 0, 0.0
    async with connected(consumer):
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500)
            if batch and not started:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
            if batch:
                await consumer.commit()
        elapsed = time.perf_counter() - started
    return count / elapsed


async def _progress_keys(conn: asyncpg.Connection, tenant: uuid.UUID) -> list[Key]:
    async with conn.transaction():
        await conn.execute(SET_TENANT, str(tenant))
        rows = await conn.fetch(
            "SELECT enrolment_id, requirement_id, programme_id, programme_version FROM progress"
        )
    return [tuple(r.values()) for r in rows]


async def upsert_rows(
    conn: asyncpg.Connection, tenant: uuid.UUID, keys: list[Key], rows: int
) -> float:
    """rows/s: one upsert per statement, one statement per tenant transaction."""
    started = time.perf_counter()
    for i in range(rows):
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant))
            await conn.execute(_UPSERT, *keys[i % len(keys)])
    return rows / (time.perf_counter() - started)


async def upsert_batches(
    conn: asyncpg.Connection, tenant: uuid.UUID, keys: list[Key], rows: int
) -> float:
    """rows/s: up to 1,000 distinct rows per unnest statement, one per transaction."""
    size = min(BATCH, len(keys))
    done, offset = 0, 0
    started = time.perf_counter()
    while done < rows:
        batch = [keys[(offset + i) % len(keys)] for i in range(min(size, rows - done))]
        offset += len(batch)
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant))
            await conn.execute(_UPSERT_MANY, *(list(column) for column in zip(*batch, strict=True)))
        done += len(batch)
    return rows / (time.perf_counter() - started)
