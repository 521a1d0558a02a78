"""The fleet's one Kafka producer: exact bytes, keys and headers, idempotent."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

Headers = Sequence[tuple[str, bytes]]


class KafkaSink:
    """Publishes raw records (outbox rows, dead letters, replays) and waits for acks."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=15000,
        )

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
        await self._producer.send_and_wait(topic, value, key=key, headers=list(headers))

    async def send_many(
        self, records: Sequence[tuple[str, bytes | None, bytes | None, Headers]]
    ) -> None:
        """Publish records (topic, value, key, headers) and wait until the broker has all."""
        futures = [
            await self._producer.send(topic, value, key=key, headers=list(headers))
            for topic, value, key, headers in records
        ]
        for future in futures:
            await future
