"""The naive baseline: the shape a consumer takes by default (faststream's
per-message acknowledgement) — for every message, decode and validate it, open a
tenant transaction, claim the event id in the inbox, look up the assignment,
insert the submission and its score, upsert the progress row, commit, then
commit that message's offset. Run in this process on the same messages as the
orchestrator, timed from the first record to the last offset commit."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.structs import OffsetAndMetadata

from bench.context import Context
from bench.kafka import produce
from bench.stack import scratch, topics
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.events.envelope import decode_event
from shared.messaging.clients import connected
from shared.settings import Settings

_CLAIM = """
INSERT INTO inbox (tenant_id, consumer, event_id, event_type)
VALUES (app_current_tenant(), 'bench-naive', $1, $2)
ON CONFLICT DO NOTHING RETURNING true
"""
_LINK = """
SELECT p.enrolment_id, p.requirement_id, p.programme_id, p.programme_version
FROM assignments a JOIN progress p USING (tenant_id, enrolment_id, requirement_id)
WHERE a.assignment_id = $1
"""
_SUBMISSION = """
INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id, submitted_at,
                         event_id)
VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
"""
_SCORE = """
INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                               effective_at, event_id)
VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
"""
_PROGRESS = """
INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id, programme_version)
VALUES (app_current_tenant(), $1, $2, $3, $4)
ON CONFLICT (tenant_id, enrolment_id, requirement_id)
DO UPDATE SET attempt_count = progress.attempt_count + 1, last_updated_at = now()
"""


async def naive(ctx: Context) -> None:
    source = await ctx.submissions()
    messages = source.messages[: ctx.sizes.naive_events]
    for run in range(ctx.runs):
        async with (
            scratch(ctx.stack, source.database, f"naive{run}") as database,
            topics(ctx.stack, "naive", ctx.sizes.partitions) as prefix,
        ):
            topic = f"{prefix}submission.created"
            count, _ = await produce(ctx.stack.conns.kafka, topic, messages)
            settings = Settings(database_url=ctx.stack.conns.app(database), db_pool_max_size=2)
            pool = await create_pool(settings)
            try:
                rate = await _consume(ctx, pool, topic, f"{prefix}bench-naive", count)
            finally:
                await pool.close()
            ctx.results.add("naive", rate)


async def _consume(ctx: Context, pool: asyncpg.Pool, topic: str, group: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=ctx.stack.conns.kafka,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    done, started = 0, 0.0
    async with connected(consumer):
        while done < count:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    started = started or time.perf_counter()
                    await _handle(pool, record)
                    await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
                    done += 1
        return count / (time.perf_counter() - started)


async def _handle(pool: asyncpg.Pool, record: ConsumerRecord[Any, Any]) -> None:
    event = decode_event(record.value, "submission.created", 256 * 1024)
    data = event.data
    async with TenantUnitOfWork(pool, event.tenantid) as uow:
        conn = uow.connection
        if await conn.fetchval(_CLAIM, event.id, event.type):
            link = await conn.fetchrow(_LINK, data.assignment_id)
            await conn.execute(
                _SUBMISSION,
                data.submission_id,
                data.assignment_id,
                data.user_id,
                data.evaluation_id,
                data.submitted_at,
                event.id,
            )
            await conn.execute(
                _SCORE,
                data.submission_id,
                data.score_version,
                data.score,
                data.passed,
                data.submitted_at,
                event.id,
            )
            if link is not None:
                await conn.execute(_PROGRESS, *link.values())
        await uow.commit()
