"""Reading and re-publishing dead letters (`<topic>.dlq`).

Replay sends each dead letter back to the topic it came from, with its original
key, value and headers (the x-dlq-* context stripped), so its event id is kept
and consumers that did process it before de-duplicate it. What was replayed is
tracked by a dedicated consumer group whose offsets are committed only after the
broker acknowledged the re-published record: running replay twice publishes
each dead letter once (at least once if interrupted between the two).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from cli.errors import CommandError
from cli.topics import partitions, reader, started
from shared.messaging.dead_letters import SOURCE_TOPIC
from shared.messaging.producer import KafkaSink

DLQ_HEADER_PREFIX = "x-dlq-"
REPLAY_GROUP = "programmes-dlq-replay"
READ_TIMEOUT_SECONDS = 60.0
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: where it sits, its key, the dead-letter context, and the
    CloudEvent id and type when its value is one."""

    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    headers: dict[str, str]  # the x-dlq-* headers
    event_id: str | None
    event_type: str | None
    # The raw record, for replay; not part of what `dlq list` prints.
    record: Record | None = field(default=None, repr=False, compare=False, metadata={"json": False})

    @property
    def source_topic(self) -> str | None:
        """Where it was read from, hence where a replay sends it."""
        return self.headers.get(SOURCE_TOPIC)


@dataclass(frozen=True)
class Replayed:
    """What replay did (or, in a dry run, would do) with one dead letter."""

    partition: int
    offset: int
    source_topic: str | None
    event_id: str | None
    event_type: str | None
    outcome: str  # replayed | would_replay | skipped_no_source_topic


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _event_identity(value: bytes | None) -> tuple[str | None, str | None]:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return None, None
    if not isinstance(body, dict) or "specversion" not in body:
        return None, None
    return _str_or_none(body.get("id")), _str_or_none(body.get("type"))


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def dead_letter(record: Record) -> DeadLetter:
    """Describe a record of a dead-letter topic."""
    event_id, event_type = _event_identity(record.value)
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=_text(record.key),
        headers={
            name: _text(value) or ""
            for name, value in record.headers
            if name.startswith(DLQ_HEADER_PREFIX)
        },
        event_id=event_id,
        event_type=event_type,
        record=record,
    )


def original_headers(record: Record) -> list[tuple[str, bytes]]:
    """The headers the message had before it was dead-lettered."""
    return [(k, v) for k, v in record.headers if not k.startswith(DLQ_HEADER_PREFIX)]


async def _read_to_end(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> list[Record]:
    """Everything from each partition's position up to its end as of now."""
    ends = await consumer.end_offsets(list(tps))
    pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    records: list[Record] = []
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    while pending:
        if time.monotonic() > deadline:
            raise CommandError(f"timed out reading {sorted({tp.topic for tp in tps})}")
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for tp, fetched in batch.items():
            records.extend(r for r in fetched if r.offset < ends[tp])
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def list_dead_letters(bootstrap: str, dlq_topic: str) -> list[DeadLetter]:
    """Every dead letter of `dlq_topic`, read from the beginning without a group
    (nothing is committed anywhere)."""
    async with started(reader(bootstrap), bootstrap) as consumer:
        tps = await partitions(bootstrap, dlq_topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return [dead_letter(r) for r in await _read_to_end(consumer, tps)]


async def replay_dead_letters(
    bootstrap: str, dlq_topic: str, group: str, sink: KafkaSink | None
) -> list[Replayed]:
    """Re-publish the dead letters not replayed yet by `group`; without a sink, a
    dry run that publishes and commits nothing."""
    async with started(reader(bootstrap, group_id=group), bootstrap) as consumer:
        tps = await partitions(bootstrap, dlq_topic)
        if not tps:
            return []
        consumer.assign(tps)
        for tp in tps:
            done = await consumer.committed(tp)
            if done is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, done)
        letters = [dead_letter(r) for r in await _read_to_end(consumer, tps)]
        return [await _replay_one(consumer, letter, sink) for letter in letters]


async def _replay_one(
    consumer: AIOKafkaConsumer, letter: DeadLetter, sink: KafkaSink | None
) -> Replayed:
    record, source = letter.record, letter.source_topic
    assert record is not None
    if sink is None:
        outcome = "would_replay" if source else "skipped_no_source_topic"
    else:
        if source:
            await sink.send(source, record.value, key=record.key, headers=original_headers(record))
        # Committed only once the broker has the copy; a letter without a source
        # topic can never be replayed, so it is passed over for good.
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
        outcome = "replayed" if source else "skipped_no_source_topic"
    return Replayed(
        letter.partition, letter.offset, source, letter.event_id, letter.event_type, outcome
    )
