"""Dead letters: the original record plus headers that say what went wrong where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.messaging.producer import KafkaSink
from shared.messaging.topics import dead_letter_topic

ERROR_CLASS = "x-dlq-error-class"
ERROR_MESSAGE = "x-dlq-error-message"
SOURCE_TOPIC = "x-dlq-source-topic"
SOURCE_PARTITION = "x-dlq-source-partition"
SOURCE_OFFSET = "x-dlq-source-offset"
CONSUMER_GROUP = "x-dlq-consumer-group"
FAILED_AT = "x-dlq-failed-at"
DLQ_HEADERS = frozenset(
    {
        ERROR_CLASS,
        ERROR_MESSAGE,
        SOURCE_TOPIC,
        SOURCE_PARTITION,
        SOURCE_OFFSET,
        CONSUMER_GROUP,
        FAILED_AT,
    }
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Kafka record as the consumer pipeline received it, bytes untouched."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def dead_letter_headers(
    delivery: Delivery, error_class: str, message: str, group: str, now: datetime | None = None
) -> list[tuple[str, bytes]]:
    """The original headers followed by the contract's error context."""
    context = {
        ERROR_CLASS: error_class,
        ERROR_MESSAGE: message[:2000],
        SOURCE_TOPIC: delivery.topic,
        SOURCE_PARTITION: str(delivery.partition),
        SOURCE_OFFSET: str(delivery.offset),
        CONSUMER_GROUP: group,
        FAILED_AT: (now or datetime.now(UTC)).isoformat(),
    }
    kept = [(k, v) for k, v in delivery.headers if k not in DLQ_HEADERS]
    return kept + [(k, v.encode()) for k, v in context.items()]


class DeadLetterPublisher:
    """Sends records that can never be processed to `<topic>.dlq`."""

    def __init__(self, sink: KafkaSink, group: str) -> None:
        self._sink = sink
        self._group = group

    async def publish(self, delivery: Delivery, error_class: str, message: str) -> None:
        """Publish the original value and key with the error context; waits for the ack."""
        await self._sink.send(
            dead_letter_topic(delivery.topic),
            delivery.value,
            key=delivery.key,
            headers=dead_letter_headers(delivery, error_class, message, self._group),
        )
