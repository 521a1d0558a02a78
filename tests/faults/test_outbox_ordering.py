"""Scenario 7 — outbox ordering: a transaction that holds an early outbox row open
while later rows commit and get published must not lose its row. The relay selects
`published_at IS NULL` (no high-water mark), so the early row goes out once its
transaction commits; a rolled-back row never does.

Real connections throughout: long transactions stay open on their own pooled
connections while short ones commit and two relays (FOR UPDATE SKIP LOCKED) publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.definitions import service as definitions
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.outbox import OutboxRelay, enqueue
from shared.settings import Settings
from tests.support.events import enrolment_created
from tests.support.figures import figure
from tests.support.kafka import create_topics, eventually
from tests.support.orchestration import all_records

TENANTS = 3
SHORT_ROWS = 40
CONCURRENT = 4  # short transactions committing at once
SEED = 7


@dataclass
class Ledger:
    """What the test did, hence what Kafka must end up with (the oracle)."""

    committed: set[uuid.UUID] = field(default_factory=set)
    rolled_back: set[uuid.UUID] = field(default_factory=set)


def _event(tenant: uuid.UUID) -> CloudEvent[Any]:
    return enrolment_created(tenant, uuid.uuid4(), enrolled_at=datetime.now(UTC))


async def _enqueue(conn: Any, event: CloudEvent[Any], settings: Settings) -> int:
    """Write `event` to the outbox in the caller's transaction; its row id."""
    assert await enqueue(conn, event, topic_prefix=settings.topic_prefix, key=str(event.id))
    row_id = await conn.fetchval("SELECT id FROM outbox WHERE event_id = $1", event.id)
    assert isinstance(row_id, int)
    return row_id


@contextlib.asynccontextmanager
async def _relays(pool: asyncpg.Pool, bootstrap: str, count: int) -> AsyncIterator[None]:
    sinks = [KafkaSink(bootstrap, client_id=f"relay-{i}") for i in range(count)]
    for sink in sinks:
        await sink.start()
    tasks = [asyncio.create_task(OutboxRelay(pool, sink, interval=0.05).run()) for sink in sinks]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sink in sinks:
            await sink.stop()


async def _published(bootstrap: str, topic: str) -> Counter[uuid.UUID]:
    """How many times each event id is on the topic."""
    return Counter(
        uuid.UUID(json.loads(r.value)["id"]) for r in await all_records(bootstrap, topic) if r.value
    )


async def _unpublished_rows(pool: asyncpg.Pool, tenants: list[uuid.UUID]) -> int:
    total = 0
    for tenant in tenants:
        async with TenantUnitOfWork(pool, tenant) as uow:
            total += await uow.connection.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
    return total


async def test_rows_held_back_by_long_transactions_are_published_once_they_commit(
    settings: Settings,
) -> None:
    rng = random.Random(SEED)
    bootstrap = settings.kafka_bootstrap_servers
    topic = topic_for("enrolment.created", settings.topic_prefix)
    await create_topics(bootstrap, [topic])
    pool = await create_pool(settings.model_copy(update={"db_pool_max_size": 12}))
    tenants = [uuid.uuid4() for _ in range(TENANTS)]
    ledger = Ledger()
    held: list[tuple[TenantUnitOfWork, CloudEvent[Any], int, float]] = []
    try:
        for tenant in tenants:
            async with TenantUnitOfWork(pool, tenant) as uow:
                await definitions.ensure_tenant(uow.connection)
                await uow.commit()

        # The first long transaction writes the earliest row of all, and stays open.

        async def hold(tenant: uuid.UUID) -> None:
            uow = TenantUnitOfWork(pool, tenant)
            await uow.__aenter__()
            event = _event(tenant)
            row_id = await _enqueue(uow.connection, event, settings)
            held.append((uow, event, row_id, time.monotonic()))

        async def short(tenant: uuid.UUID) -> None:
            event = _event(tenant)
            async with TenantUnitOfWork(pool, tenant) as uow:
                await _enqueue(uow.connection, event, settings)
                await uow.commit()
            ledger.committed.add(event.id)

        await hold(tenants[0])
        async with _relays(pool, bootstrap, count=2):
            # Short transactions of every tenant commit around two more long ones.
            rounds = SHORT_ROWS // CONCURRENT
            for i in range(rounds):
                if i in (rounds // 3, 2 * rounds // 3):
                    await hold(tenants[i % TENANTS])
                await asyncio.gather(*(short(rng.choice(tenants)) for _ in range(CONCURRENT)))
                await asyncio.sleep(rng.random() * 0.05)  # let a relay poll in between

            async def shorts_out() -> bool:
                return set(await _published(bootstrap, topic)) >= ledger.committed

            await eventually(shorts_out, within=30)
            out = await _published(bootstrap, topic)
            early_id = held[0][2]
            later_ids_published = len(ledger.committed)
            assert all(event.id not in out for _, event, _, _ in held)  # not committed yet
            max_published_id = max([await _max_row_id(pool, t, published=True) for t in tenants])
            assert max_published_id > early_id  # the relay did get past the early row

            # Commit the held rows latest first; roll the middle one back.
            (first, e1, _, t1), (second, e2, _, _), (third, e3, _, _) = held
            held.clear()
            await third.commit()
            await third.__aexit__(None, None, None)
            ledger.committed.add(e3.id)
            await second.__aexit__(None, None, None)  # never committed: rolled back
            ledger.rolled_back.add(e2.id)
            await first.commit()
            held_for = time.monotonic() - t1
            await first.__aexit__(None, None, None)
            ledger.committed.add(e1.id)
            committed_at = time.monotonic()

            async def all_out() -> bool:
                return set(await _published(bootstrap, topic)) >= ledger.committed

            await eventually(all_out, within=30)
            latency = time.monotonic() - committed_at
            await asyncio.sleep(0.5)  # ten more relay polls: nothing else may appear
        out = await _published(bootstrap, topic)
        assert set(out) == ledger.committed  # the rolled-back row never went out
        assert not ledger.rolled_back & set(out)
        assert set(out.values()) == {1}  # two relays, each row exactly once
        assert await _unpublished_rows(pool, tenants) == 0
        figure(
            "7-outbox-ordering",
            rows_committed=len(ledger.committed),
            rows_rolled_back=len(ledger.rolled_back),
            published_before_early_row=later_ids_published,
            early_row_held_s=round(held_for, 2),
            early_row_published_after_commit_s=round(latency, 2),
            duplicates=sum(n - 1 for n in out.values()),
        )
    finally:
        for uow, *_ in held:
            await uow.__aexit__(None, None, None)  # rolls back whatever a failure left open
        await pool.close()


async def _max_row_id(pool: asyncpg.Pool, tenant: uuid.UUID, *, published: bool) -> int:
    async with TenantUnitOfWork(pool, tenant) as uow:
        value = await uow.connection.fetchval(
            "SELECT coalesce(max(id), 0) FROM outbox WHERE (published_at IS NOT NULL) = $1",
            published,
        )
    return int(value)
