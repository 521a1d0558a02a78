"""The fleet's one Kafka producer: exact bytes, keys and headers, idempotent."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, ProducerFenced

Headers = Sequence[tuple[str, bytes]]
ProducerFactory = Callable[[], AIOKafkaProducer]

log = structlog.get_logger("programmes.producer")

# Errors after which one aiokafka producer can send nothing more: its sender task died
# with them (an idempotent producer's sequence numbers broke, seen after a broker
# restart). A new producer, with a new producer id, can.
_PRODUCER_DEAD = (OutOfOrderSequenceNumber, ProducerFenced)


class ProducerReplaced(KafkaError):  # type: ignore[misc]  # (aiokafka is untyped)
    """The producer failed for good and is being replaced; what it was sending may or
    may not have reached the broker: send it again (a transient fault)."""

    retriable = True


class KafkaSink:
    """Publishes raw records (outbox rows, dead letters, replays) and waits for acks.

    When the producer fails for good, the sink replaces it with a new one instead of
    leaving its service unable to publish until restarted: the failing call raises
    `ProducerReplaced` (transient, so the caller's retry sends again) and the next call
    starts a new producer.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        *,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        def producer() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                request_timeout_ms=15000,
            )

        self._new_producer = producer_factory or producer
        self._producer = self._new_producer()
        self._dead = False

    async def start(self) -> None:
        """Connect to the broker (and let go of the sockets if that fails)."""
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None, headers: Headers
    ) -> None:
        """Publish one record and wait until the broker has it."""
        await self.send_many([(topic, value, key, headers)])

    async def send_many(
        self, records: Sequence[tuple[str, bytes | None, bytes | None, Headers]]
    ) -> None:
        """Publish records (topic, value, key, headers) and wait until the broker has all."""
        producer = await self._alive()
        try:
            futures = [
                await producer.send(topic, value, key=key, headers=list(headers))
                for topic, value, key, headers in records
            ]
            for future in futures:
                await future
        except _PRODUCER_DEAD as error:
            raise self._died(error) from error

    def _died(self, error: KafkaError) -> ProducerReplaced:
        self._dead = True
        log.warning("kafka producer failed for good, replacing it", error=repr(error))
        return ProducerReplaced(f"producer failed ({error!r}); send again")

    async def _alive(self) -> AIOKafkaProducer:
        """The producer, replaced first if the last one died (a failed start leaves the
        sink marked dead, so the next call tries again)."""
        if self._dead:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = self._new_producer()
            await self.start()
            self._dead = False
            log.info("kafka producer replaced")
        return self._producer
