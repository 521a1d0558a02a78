"""The broker side of a measurement: producing a workload fast, and watching a
consumer group from outside (membership, committed offsets) with the admin API,
as an operator's lag dashboard would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.messaging.clients import connected

Message = tuple[bytes, bytes]  # (key, value)


def partitions_of(topic: str, count: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(count)]


def bulk_producer(bootstrap: str, *, linger_ms: int = 20) -> AIOKafkaProducer:
    """A producer tuned for throughput (the latency scenario uses linger_ms=0)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        acks="all",
    )


async def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> tuple[int, float]:
    """Publish every message and wait for the acks; returns (count, time.time() of
    the first send)."""
    count, first = 0, 0.0
    async with connected(bulk_producer(bootstrap)) as producer:
        for key, value in messages:
            if not count:
                first = time.time()
            await producer.send(topic, value, key=key)
            count += 1
        await producer.flush()
    return count, first


@dataclass
class GroupWatch:
    """Admin and metadata clients kept open while a measurement polls a group."""

    bootstrap: str
    admin: Any = None
    reader: Any = None
    _clients: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def __aenter__(self) -> GroupWatch:
        async with contextlib.AsyncExitStack() as clients:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            self.admin = await clients.enter_async_context(connected(admin))
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            self.reader = await clients.enter_async_context(connected(reader))
            self._clients = clients.pop_all()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._clients.aclose()

    async def end_total(self, tps: Sequence[TopicPartition]) -> int:
        ends = await self.reader.end_offsets(list(tps))
        return int(sum(ends.values()))

    async def committed_total(self, group: str, tps: Sequence[TopicPartition]) -> int:
        committed = await self.admin.list_consumer_group_offsets(group, partitions=list(tps))
        return int(sum(max(meta.offset, 0) for meta in committed.values()))

    async def drained(
        self,
        group: str,
        tps: Sequence[TopicPartition],
        *,
        within: float,
        interval: float = 0.1,
        alive: Callable[[], None] = lambda: None,
    ) -> float:
        """Wait until `group` has committed up to the end of `tps` (lag 0); returns
        time.time() when it was seen. `alive()` is asked at every look, to fail early
        (a service that exited)."""
        end = await self.end_total(tps)
        deadline = time.monotonic() + within
        while await self.committed_total(group, tps) < end:
            alive()
            if time.monotonic() > deadline:
                done = await self.committed_total(group, tps)
                raise TimeoutError(f"{group}: {done} of {end} committed after {within:.0f} s")
            await asyncio.sleep(interval)
        return time.time()

    async def holders(self, group: str, topic: str) -> tuple[str, int, set[int]]:
        """The group's state, how many members hold partitions of `topic`, and which."""
        [response] = await self.admin.describe_consumer_groups([group])
        [described] = response.to_object()["groups"]
        members, assigned = 0, set()
        for member in described["members"]:
            raw = member["member_assignment"]
            if not raw:
                continue
            mine = [
                p
                for t, ps in ConsumerProtocolMemberAssignment.decode(raw).assignment
                for p in ps
                if t == topic
            ]
            members += bool(mine)
            assigned.update(mine)
        return str(described["state"]), members, assigned

    async def consuming(self, group: str, topic: str, *, within: float = 90.0) -> float:
        """Wait until some member of `group` holds a partition of `topic`, whatever
        the group's state (members keep fetching while a rebalance is prepared);
        returns time.time() when it was seen."""
        deadline = time.monotonic() + within
        while not (await self.holders(group, topic))[2]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group}: no member holds {topic} after {within:.0f} s")
            await asyncio.sleep(0.05)
        return time.time()

    async def assigned(
        self, group: str, topic: str, *, members: int, partitions: int, within: float = 90.0
    ) -> float:
        """Wait until the group is stable with every partition of `topic` held by
        exactly `members` members; returns time.time() when it was seen."""
        deadline = time.monotonic() + within
        while True:
            state, holding, assigned = await self.holders(group, topic)
            if state == "Stable" and holding == members and len(assigned) == partitions:
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{group}: {state}, {holding} member(s) hold {len(assigned)} partition(s)"
                    f" of {topic} after {within:.0f} s"
                )
            await asyncio.sleep(0.05)


async def dead_letters(bootstrap: str, topics: Sequence[str]) -> int:
    """How many messages the dead-letter topics of `topics` hold."""
    async with GroupWatch(bootstrap) as watch:
        return await watch.end_total([TopicPartition(f"{t}.dlq", 0) for t in topics])
