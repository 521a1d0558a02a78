"""The faststream broker factory and the batch subscriber every service uses.

faststream runs the consumer group, the fetch loop and the offset commits; the
pipeline in `consumer.py` owns decoding, so a malformed record can never stop
the framework before it reaches the dead-letter path. Offsets are committed only
after a whole batch is settled (AckPolicy.NACK_ON_ERROR: an escaping error, such
as cancellation at shutdown, rewinds to the batch's first record instead).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.events import envelope_for
from shared.messaging.consumer import EventConsumer
from shared.messaging.dead_letters import Delivery
from shared.messaging.prefetch import PrefetchingConsumer
from shared.settings import DEFAULT_MAX_BATCH, Settings
from shared.telemetry import broker_middlewares


class PrefetchingBroker(KafkaBroker):
    """A faststream broker whose subscribers consume with `PrefetchingConsumer`,
    running up to `prefetch_records` records ahead of their handlers."""

    def __init__(self, *args: Any, prefetch_records: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prefetch_records = prefetch_records

    async def _connect(self) -> Callable[..., AIOKafkaConsumer]:
        await super()._connect()
        # faststream builds every subscriber's consumer with this factory, which
        # it sets when connecting: swap the class, keep its options.
        config = self.config.broker_config
        options = config.builder.keywords  # type: ignore[attr-defined]
        config.builder = partial(
            PrefetchingConsumer, prefetch_records=self._prefetch_records, **options
        )
        return config.builder


def create_broker(settings: Settings, client_id: str) -> KafkaBroker:
    """One broker per process; bodies are handed over undecoded (apply_types=False).
    With tracing on (shared/telemetry.py), faststream's tracing middleware spans
    every batch, linked to the `traceparent` headers of its records."""
    return PrefetchingBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        apply_types=False,
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=20.0,
        middlewares=broker_middlewares(),
        prefetch_records=settings.max_batch,
    )


async def _tolerant_parser(records: tuple[ConsumerRecord[Any, Any], ...], original: Any) -> Any:
    # faststream decodes header values as strict UTF-8 and would fail on a
    # poison record before any handler runs: give it lossy copies then, keep the
    # originals (they go to the dead-letter topic untouched).
    try:
        message = await original(records)
    except UnicodeDecodeError:
        safe = tuple(
            dataclasses.replace(
                record,
                headers=tuple(
                    (name, value.decode("utf-8", "replace").encode())
                    for name, value in record.headers
                ),
            )
            for record in records
        )
        message = await original(safe)
    message.raw_message = records
    return message


async def _deliveries(message: Any, original: Any) -> list[Delivery]:
    return [
        Delivery(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            key=r.key,
            value=r.value,
            headers=tuple(r.headers),
        )
        for r in message.raw_message
    ]


BATCH_TIMEOUT_MS = 10

BatchProcessor = Callable[[Sequence[Delivery]], Awaitable[None]]


def subscribe(
    broker: KafkaBroker,
    *,
    event_type: str,
    topic: str,
    group_id: str,
    process_batch: BatchProcessor,
    description: str,
    max_records: int = DEFAULT_MAX_BATCH,
) -> None:
    """Feed batches of `topic` to `process_batch` as member of `group_id`."""
    payload = list[envelope_for(event_type)]  # type: ignore[misc, valid-type]

    async def on_batch(body: list[Delivery]) -> None:
        await process_batch(body)

    # The annotation only documents the payload in the AsyncAPI schema.
    on_batch.__annotations__["body"] = payload
    broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        # How long an empty poll waits for records. faststream sleeps as long
        # again after an empty poll, so this bounds the latency added to the first
        # message after a quiet spell (twice this); a busy topic never waits.
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        parser=_tolerant_parser,
        decoder=_deliveries,
        title=f"{topic}:{group_id}",
        description=description,
    )(on_batch)


def subscribe_consumer(
    broker: KafkaBroker,
    consumer: EventConsumer,
    *,
    topic: str,
    group_id: str,
    max_records: int = DEFAULT_MAX_BATCH,
) -> None:
    """Feed batches of `topic` to the consumer pipeline `consumer`."""
    subscribe(
        broker,
        event_type=consumer.event_type,
        topic=topic,
        group_id=group_id,
        process_batch=consumer.process_batch,
        description=f"{consumer.name} applies {consumer.event_type} events.",
        max_records=max_records,
    )
