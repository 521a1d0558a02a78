"""Consumer lag: how far a consumer group's commits trail the end of its topics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.messaging.clients import connected
from shared.metrics import CONSUMER_LAG

log = structlog.get_logger("programmes.lag")


async def partition_lag(
    bootstrap: str, group: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> records not yet committed by `group`.

    Partitions come from the cluster (a fresh consumer knows none of them), and
    only existing topics are described: describing a missing one creates it.
    """
    async with (
        connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin,
        connected(
            AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        ) as consumer,
    ):
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([t for t in topics if t in existing])
        partitions = [
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
        ]
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(partitions)
    return {
        (tp.topic, tp.partition): end - (committed[tp].offset if tp in committed else 0)
        for tp, end in ends.items()
    }


class LagMonitor:
    """Samples a group's lag every `interval` seconds into `programmes_consumer_lag`."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], interval: float) -> None:
        self._bootstrap = bootstrap
        self._group = group
        self._topics = list(topics)
        self._interval = interval

    async def sample(self) -> dict[tuple[str, int], int]:
        """Measure once and export the gauges."""
        lags = await partition_lag(self._bootstrap, self._group, self._topics)
        for (topic, partition), value in lags.items():
            CONSUMER_LAG.labels(self._group, topic, str(partition)).set(value)
        return lags

    async def run(self) -> None:
        """Sample forever (until cancelled); a broker hiccup only skips a sample."""
        while True:
            try:
                await self.sample()
            except (KafkaError, OSError) as error:
                log.warning("consumer lag not measured", error=str(error)[:200])
            await asyncio.sleep(self._interval)
