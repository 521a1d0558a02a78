"""The producer port replaces a producer that failed for good (finding 2 of
docs/reliability.md: after a broker restart an idempotent producer's sender died with
OutOfOrderSequenceNumber, the relay loop failed and the whole service exited).

The broker restart itself is the fault tier's (test_infrastructure_restarts.py), where
the failure shows in some runs only; here aiokafka's producer is replaced by fakes, at
the port."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from shared.errors import is_transient
from shared.messaging.producer import KafkaSink, ProducerReplaced


class FakeProducer:
    """An aiokafka producer whose sends succeed, or fail with `fails_with`."""

    def __init__(self, fails_with: Exception | None = None, start_fails: bool = False) -> None:
        self.fails_with = fails_with
        self.start_fails = start_fails
        self.started = self.stopped = False
        self.sent: list[tuple[str, bytes | None]] = []

    async def start(self) -> None:
        if self.start_fails:
            raise KafkaConnectionError("broker away")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fails_with is not None:
            done.set_exception(self.fails_with)
        else:
            self.sent.append((topic, value))
            done.set_result(None)
        return done


def sink_over(*producers: FakeProducer) -> KafkaSink:
    queue = list(producers)
    return KafkaSink("unused:9092", "test", producer_factory=lambda: queue.pop(0))


RECORD = ("topic", b"value", None, ())


async def test_a_dead_producer_is_replaced_and_the_failed_send_is_transient() -> None:
    dead, fresh = FakeProducer(fails_with=OutOfOrderSequenceNumber()), FakeProducer()
    sink = sink_over(dead, fresh)
    await sink.start()
    with pytest.raises(ProducerReplaced) as failed:
        await sink.send_many([RECORD])
    assert is_transient(failed.value)  # the relay's retry sends the batch again
    await sink.send_many([RECORD])
    await sink.send("other", b"x", key=None, headers=())
    assert dead.stopped and fresh.started
    assert fresh.sent == [("topic", b"value"), ("other", b"x")]


async def test_a_replacement_that_cannot_start_is_tried_again() -> None:
    dead = FakeProducer(fails_with=OutOfOrderSequenceNumber())
    unreachable, fresh = FakeProducer(start_fails=True), FakeProducer()
    sink = sink_over(dead, unreachable, fresh)
    await sink.start()
    with pytest.raises(ProducerReplaced) as first:
        await sink.send("topic", b"1", key=None, headers=())
    with pytest.raises(KafkaConnectionError) as second:
        await sink.send("topic", b"2", key=None, headers=())
    assert is_transient(first.value) and is_transient(second.value)
    await sink.send("topic", b"3", key=None, headers=())
    assert unreachable.stopped and fresh.sent == [("topic", b"3")]


async def test_other_errors_keep_the_producer() -> None:
    producer = FakeProducer(fails_with=KafkaConnectionError("timeout"))
    sink = sink_over(producer)
    await sink.start()
    with pytest.raises(KafkaConnectionError):
        await sink.send("topic", b"1", key=None, headers=())
    producer.fails_with = None
    await sink.send("topic", b"2", key=None, headers=())
    assert producer.sent == [("topic", b"2")] and not producer.stopped
