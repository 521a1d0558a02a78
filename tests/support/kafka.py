"""Small helpers to drive the real broker from tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.messaging.clients import connected
from shared.messaging.lag import partition_lag


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 3) -> None:
    """Create topics up front, so consumers see every partition from the start."""
    async with connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(n, partitions, 1) for n in names])


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Publish raw values (in order, under one key when given) and wait for the acks."""
    async with connected(AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")) as producer:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers))


async def consume(
    bootstrap: str, topic: str, count: int, within: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `count` records of `topic` from the beginning (fails on timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + within
    async with connected(consumer):
        while len(records) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: got {len(records)} of {count} records")
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    return records


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 30.0, interval: float = 0.1
) -> None:
    """Wait until `check()` is true (fails after `within` seconds)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polling a database, no event to wait on
            await asyncio.sleep(interval)


async def lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Records of `topics` that `group` has not committed yet (0: all processed)."""
    return sum((await partition_lag(bootstrap, group, topics)).values())


async def topic_exists(bootstrap: str, topic: str) -> bool:
    """Whether the broker has `topic` (asked without creating it)."""
    async with connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        return topic in await admin.list_topics()


async def drained(bootstrap: str, group: str, topics: Sequence[str], within: float = 60.0) -> None:
    """Wait until `group` has committed every message of `topics`."""

    async def no_lag() -> bool:
        return await lag(bootstrap, group, topics) == 0

    await eventually(no_lag, within=within, interval=0.2)


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> int:
    """Delete every topic named with `prefix` (a test's own); returns how many."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    async with connected(admin):
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=60000)
        return len(doomed)
