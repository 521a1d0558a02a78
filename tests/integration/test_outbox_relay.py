"""The outbox relay drains in batches and stops at the first short one."""

from __future__ import annotations

import asyncpg

from shared.db.uow import TenantUnitOfWork
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.outbox import OutboxRelay, enqueue
from shared.settings import Settings
from tests.support.kafka import create_topics
from tests.support.poison import submission_event
from tests.support.seed import seed_programme


class CountingRelay(OutboxRelay):
    """The relay, noting how many rows each of its batches published."""

    def __init__(self, pool: asyncpg.Pool, sink: KafkaSink, batch_size: int) -> None:
        super().__init__(pool, sink, batch_size=batch_size)
        self.batches: list[int] = []

    async def publish_batch(self) -> int:
        published = await super().publish_batch()
        self.batches.append(published)
        return published


async def test_drain_publishes_every_pending_row_and_stops_at_a_short_batch(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await create_topics(
        settings.kafka_bootstrap_servers, [topic_for("submission.created", settings.topic_prefix)]
    )
    tenant = (await seed_programme(pool)).tenant_id
    async with TenantUnitOfWork(pool, tenant) as uow:
        for _ in range(7):
            event = submission_event(tenant)
            await enqueue(uow.connection, event, topic_prefix=settings.topic_prefix, key="k")
        await uow.commit()

    sink = KafkaSink(settings.kafka_bootstrap_servers, client_id="test")
    await sink.start()
    try:
        relay = CountingRelay(pool, sink, batch_size=3)
        assert await relay.drain() == 7
        assert relay.batches == [3, 3, 1]  # no fourth claim to learn nothing is left
        assert await relay.measure_backlog() == 0
        # With nothing pending, one claim finds nothing.
        relay.batches.clear()
        assert await relay.drain() == 0
        assert relay.batches == [0]
    finally:
        await sink.stop()
