"""Plays the platform's part for a planned workload, through the real topics.

Every enrolment is announced at once; each requirement's submissions (and their
corrections) follow as soon as the delivery engine has created the assignment
they answer, as a learner can only submit what they were assigned. Every event
can be delivered several times, the extra copies concurrently or late, some
under another key (so another partition, possibly another consumer process,
gets them). Sends are retried through broker outages: at least once, like any
producer.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.events import CloudEvent
from shared.messaging.topics import topic_for
from tests.support.workload import Workload

Message = tuple[str, bytes, bytes]  # topic, key, value


@dataclass(frozen=True)
class Copies:
    """How each event is delivered: `count` times in all; with `rekeyed`, the last
    copy under a random key; a share `late` of the extra copies only at the end."""

    count: int = 1
    rekeyed: bool = False
    late: float = 0.0


@dataclass
class Feeder:
    """Sends a workload's events as the delivery engine makes them possible."""

    workload: Workload
    bootstrap: str
    topic_prefix: str
    engine_url: str
    copies: Copies = Copies()
    seed: int = 0
    rate: float | None = None  # records per second at most (None: as fast as possible)
    event_ids: list[uuid.UUID] = field(default_factory=list)  # distinct events sent
    messages: int = 0  # records acknowledged by the broker
    send_failures: int = 0  # sends retried (broker unavailable)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _late: list[Message] = field(default_factory=list)
    _started: float = 0.0

    async def run(self) -> None:
        """Feed everything, then set `done`."""
        rng = random.Random(self.seed)
        self._started = time.monotonic()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, request_timeout_ms=10000
        )
        try:
            await _retry(producer.start)
            enrolments = self.workload.by_enrolment()
            await self._send(producer, rng, [e.enrolment_event() for e in enrolments.values()])
            waiting = {
                (e.enrolment_id, rid)
                for e in enrolments.values()
                for rid, subs in e.submissions.items()
                if subs
            }
            async with httpx.AsyncClient(base_url=self.engine_url, timeout=10.0) as engine:
                while waiting:
                    created = await _assignments(engine)
                    ready = sorted(waiting & created.keys())
                    events = [
                        event
                        for e, r in ready
                        for event in enrolments[e].submission_events(r, created[(e, r)])
                    ]
                    waiting.difference_update(ready)
                    await self._send(producer, rng, events)
                    if waiting:
                        await asyncio.sleep(0.3)
            late, self._late = self._late, []
            await self._deliver(producer, late)
        finally:
            await producer.stop()
        self.done.set()

    async def _send(
        self, producer: AIOKafkaProducer, rng: random.Random, events: Sequence[CloudEvent[Any]]
    ) -> None:
        now: list[Message] = []
        for event in events:
            self.event_ids.append(event.id)
            topic = topic_for(event.type, self.topic_prefix)
            key = str(getattr(event.data, "enrolment_id", None) or event.data.submission_id)
            value = event.to_bytes()
            for copy in range(self.copies.count):
                rekey = self.copies.rekeyed and copy == self.copies.count - 1 and copy > 0
                message = (topic, (str(uuid.uuid4()) if rekey else key).encode(), value)
                if copy > 0 and rng.random() < self.copies.late:
                    self._late.append(message)
                else:
                    now.append(message)
        rng.shuffle(now)  # copies of one event go out side by side, not in a row
        await self._deliver(producer, now)

    async def _deliver(self, producer: AIOKafkaProducer, messages: list[Message]) -> None:
        if self.rate is None:
            await self._deliver_now(producer, messages)
            return
        for start in range(0, len(messages), 10):
            due = self._started + (self.messages + self.send_failures) / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._deliver_now(producer, messages[start : start + 10])

    async def _deliver_now(self, producer: AIOKafkaProducer, messages: list[Message]) -> None:
        while messages:
            sent = [await _retry(lambda m=m: producer.send(m[0], m[2], key=m[1])) for m in messages]
            results = await asyncio.gather(*sent, return_exceptions=True)
            failed = [m for m, r in zip(messages, results, strict=True) if isinstance(r, Exception)]
            self.messages += len(messages) - len(failed)
            self.send_failures += len(failed)
            messages = failed
            if failed:
                await asyncio.sleep(1.0)


async def _retry(operation: Any, within: float = 300.0) -> Any:
    """Await `operation()` until the broker takes it (it may be restarting)."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await operation()
            except (KafkaError, OSError):
                await asyncio.sleep(1.0)


async def _assignments(engine: httpx.AsyncClient) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """(enrolment, requirement) -> assignment id, for every assignment the engine made."""
    response = await engine.get("/api/v1/assignments")
    response.raise_for_status()
    return {
        (
            uuid.UUID(a["body"]["metadata"]["program_enrolment_id"]),
            uuid.UUID(a["body"]["metadata"]["program_requirement_id"]),
        ): uuid.UUID(a["assignment_id"])
        for a in response.json()
    }


def planned_messages(workload: Workload, copies: Copies) -> int:
    """How many records a complete feed produces (without retried sends)."""
    return workload.events * copies.count
