"""The prefetching consumer on the real broker: its fetches run ahead of the
application, its offset commits never do, and no record is handed out twice out
of order, skipped, or after its partition moved to another member."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import NoOffsetForPartitionError

from shared.messaging.clients import connected
from shared.messaging.prefetch import PrefetchingConsumer
from tests.support.kafka import create_topics, delete_topics_with_prefix, eventually
from tests.support.services import Services

Handed = dict[TopicPartition, list[int]]


@pytest.fixture
async def topic(services: Services) -> AsyncIterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    name = f"{prefix}prefetch"
    await create_topics(services.kafka_bootstrap_servers, [name], partitions=2)
    yield name
    await delete_topics_with_prefix(services.kafka_bootstrap_servers, prefix)


async def produce(bootstrap: str, topic: str, count: int, *, start: int = 0) -> None:
    """`count` numbered records, spread over partitions 0 and 1 in turn."""
    async with connected(AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")) as producer:
        sent = [
            await producer.send(topic, str(n).encode(), partition=n % 2)
            for n in range(start, start + count)
        ]
        await asyncio.gather(*sent)


def consumer_of(bootstrap: str, topic: str, group: str, **options: Any) -> PrefetchingConsumer:
    options.setdefault("prefetch_records", 1000)
    return PrefetchingConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset=options.pop("auto_offset_reset", "earliest"),
        **options,
    )


async def take(consumer: PrefetchingConsumer, handed: Handed, max_records: int) -> None:
    batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
    for tp, records in batch.items():
        handed.setdefault(tp, []).extend(int(r.value) for r in records)


async def take_until(consumer: PrefetchingConsumer, handed: Handed, total: int) -> None:
    async with asyncio.timeout(30):
        while sum(map(len, handed.values())) < total:
            await take(consumer, handed, 1000)


async def committed(consumer: PrefetchingConsumer, topic: str) -> list[int | None]:
    return [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]


def values_of(handed: Handed) -> list[int]:
    return sorted(v for values in handed.values() for v in values)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_commits_cover_what_was_handed_out_never_what_was_fetched(
    services: Services, topic: str, seed: int
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await produce(bootstrap, topic, 400)
    rng = random.Random(seed)
    handed: Handed = {}
    async with connected(consumer_of(bootstrap, topic, f"g-{uuid.uuid4().hex}")) as consumer:
        while sum(map(len, handed.values())) < 300:
            await take(consumer, handed, rng.randint(1, 60))
            await consumer.commit()
        # Everything is fetched (the positions ran ahead) ...
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        await eventually(lambda: _positions_at(consumer, tps, 200))
        await consumer.flush_commits()
        # ... but only the records handed out are committed, partition by partition.
        assert await committed(consumer, topic) == [len(handed.get(tp, [])) for tp in tps]
    for tp, values in handed.items():
        assert values == sorted(values)
        assert values == [v for v in range(400) if v % 2 == tp.partition][: len(values)]


async def _positions_at(consumer: PrefetchingConsumer, tps: list[TopicPartition], n: int) -> bool:
    return all([await consumer.position(tp) == n for tp in tps])


async def test_a_seek_forgets_the_records_fetched_past_it(services: Services, topic: str) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await produce(bootstrap, topic, 100)
    tp = TopicPartition(topic, 0)
    async with connected(consumer_of(bootstrap, topic, f"g-{uuid.uuid4().hex}")) as consumer:
        handed: Handed = {}
        while len(handed.get(tp, [])) < 20:
            await take(consumer, handed, 10)
        # A rejected batch rewinds its partition (what faststream's nack does).
        consumer.seek(tp, 4)
        again: Handed = {}
        rest_of_partition_1 = 50 - len(handed.get(TopicPartition(topic, 1), []))
        await take_until(consumer, again, 46 + rest_of_partition_1)
        assert again[tp] == [v for v in range(100) if v % 2 == 0][4:]


async def test_a_background_commit_is_finished_before_the_consumer_stops(
    services: Services, topic: str
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await produce(bootstrap, topic, 60)
    group = f"g-{uuid.uuid4().hex}"
    first: Handed = {}
    async with connected(consumer_of(bootstrap, topic, group)) as consumer:
        await take_until(consumer, first, 30)
        await consumer.commit()  # returns at once; stop() waits for it
    second: Handed = {}
    async with connected(consumer_of(bootstrap, topic, group)) as consumer:
        await take_until(consumer, second, 60 - len(values_of(first)))
    assert values_of(first) + values_of(second) == list(range(60))


async def test_a_member_joining_takes_over_from_the_last_commit(
    services: Services, topic: str
) -> None:
    """Two members, records arriving throughout, each committing after every
    batch: every record is handed out exactly once (the commits pending at the
    rebalance are finished first, and records prefetched for a partition before
    it was reassigned are dropped), each partition's records in order."""
    bootstrap = services.kafka_bootstrap_servers
    group = f"g-{uuid.uuid4().hex}"
    options = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 100}
    turns: list[Handed] = []
    members: list[PrefetchingConsumer] = []
    stop = asyncio.Event()

    async def member() -> None:
        handed: Handed = {}
        turns.append(handed)
        async with connected(consumer_of(bootstrap, topic, group, **options)) as consumer:
            members.append(consumer)
            while not stop.is_set():
                await take(consumer, handed, 7)
                await consumer.commit()
                await asyncio.sleep(0.02)  # slower than the records come: some wait prefetched

    async def paced() -> None:
        for start in range(0, 600, 4):
            await produce(bootstrap, topic, 4, start=start)
            await asyncio.sleep(0.005)

    first = asyncio.create_task(member())
    producing = asyncio.create_task(paced())
    await eventually(lambda: _handed_out(turns, 100))
    second = asyncio.create_task(member())
    await eventually(lambda: _rebalanced(members))
    await producing
    await eventually(lambda: _handed_out(turns, 600))
    stop.set()
    await asyncio.gather(first, second)

    assert all(values_of(handed) for handed in turns), "both members had records"
    assert sorted(values_of(turns[0]) + values_of(turns[1])) == list(range(600))
    for handed, other in ((turns[0], turns[1]), (turns[1], turns[0])):
        for tp, values in handed.items():
            _assert_in_order(values, tp.partition, set(other.get(tp, [])))


async def _rebalanced(members: Sequence[PrefetchingConsumer]) -> bool:
    return len(members) == 2 and all(len(m.assignment()) == 1 for m in members)


async def _handed_out(turns: Sequence[Handed], n: int) -> bool:
    return len({v for handed in turns for v in values_of(handed)}) >= n


def _assert_in_order(values: list[int], partition: int, others: set[int]) -> None:
    """A member's records of one partition follow each other, or skip (when the
    partition came back to it) exactly the records the other member was handed."""
    assert all(v % 2 == partition for v in values)
    for earlier, later in itertools.pairwise(values):
        skipped = set(range(earlier + 2, later, 2))
        assert later > earlier and skipped <= others, (earlier, later, skipped - others)


async def test_fetching_pauses_while_the_application_does_not_ask(
    services: Services, topic: str
) -> None:
    """A stuck handler must still look stuck to the group (max_poll_interval_ms):
    the background fetch stops after half that interval without a getmany."""
    bootstrap = services.kafka_bootstrap_servers
    await produce(bootstrap, topic, 20)
    tps = [TopicPartition(topic, p) for p in (0, 1)]
    consumer = consumer_of(bootstrap, topic, f"g-{uuid.uuid4().hex}", max_poll_interval_ms=2000)
    async with connected(consumer):
        await take_until(consumer, {}, 20)
        await asyncio.sleep(1.5)  # no getmany for more than half the interval
        await produce(bootstrap, topic, 20, start=20)
        await asyncio.sleep(1.0)
        assert [await consumer.position(tp) for tp in tps] == [10, 10]
        handed: Handed = {}
        await take_until(consumer, handed, 20)  # asking again resumes fetching
        assert values_of(handed) == list(range(20, 40))


async def test_a_fetch_error_reaches_the_application(services: Services, topic: str) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await produce(bootstrap, topic, 4)
    consumer = consumer_of(bootstrap, topic, f"g-{uuid.uuid4().hex}", auto_offset_reset="none")
    async with connected(consumer):
        with pytest.raises(NoOffsetForPartitionError):
            async with asyncio.timeout(30):
                while True:
                    await consumer.getmany(timeout_ms=500)
