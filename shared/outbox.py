"""The transactional outbox: events are written with the change they report and
published by a relay, so an event exists on Kafka if and only if its change was
committed (at least once; consumers de-duplicate on the event id)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from shared.db.pool import Connection
from shared.db.queries import fetch_all, messaging
from shared.db.uow import UnitOfWork
from shared.events import CloudEvent
from shared.events.envelope import CONTENT_TYPE
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISH_DELAY, OUTBOX_PUBLISHED, Every
from shared.retry import retry_transient

log = structlog.get_logger("programmes.outbox")


async def enqueue(conn: Connection, event: CloudEvent[Any], *, topic_prefix: str, key: str) -> bool:
    """Write `event` to the outbox in the caller's transaction; False if that event id
    was already written (a replayed decision re-derives the same id)."""
    written = await messaging.enqueue_event(
        conn,
        topic=topic_for(event.type, topic_prefix),
        message_key=key,
        event_id=event.id,
        event=event.to_json_dict(),
    )
    return written is not None


def _headers(event_id: UUID, traceparent: str | None) -> list[tuple[str, bytes]]:
    """Kafka headers of an outbox event: its content type, and its id and W3C
    `traceparent` where faststream's tracing middleware looks for them, so the
    consumer's batch span links to the trace that produced the event."""
    headers = [
        ("content-type", CONTENT_TYPE.encode()),
        ("correlation_id", str(event_id).encode()),
    ]
    if traceparent is not None:
        headers.append(("traceparent", traceparent.encode()))
    return headers


def outbox_columns(
    events: Sequence[tuple[CloudEvent[Any], str]], *, topic_prefix: str
) -> tuple[list[str], list[str], list[UUID], list[str]]:
    """The outbox columns of (event, key) pairs, as the arrays the set-based inserts
    take: topics, message keys, event ids, bodies."""
    return (
        [topic_for(event.type, topic_prefix) for event, _ in events],
        [key for _, key in events],
        [event.id for event, _ in events],
        [event.to_json() for event, _ in events],
    )


async def enqueue_many(
    conn: Connection, events: Sequence[tuple[CloudEvent[Any], str]], *, topic_prefix: str
) -> set[UUID]:
    """`enqueue` for many (event, key) pairs, in order, in one statement; returns the
    ids of the events written (an id already in the outbox is skipped)."""
    if not events:
        return set()
    topics, keys, ids, bodies = outbox_columns(events, topic_prefix=topic_prefix)
    rows = await fetch_all(
        messaging.enqueue_events(
            conn, topics=topics, message_keys=keys, event_ids=ids, events=bodies
        )
    )
    return {row["event_id"] for row in rows}


class OutboxRelay:
    """Publishes unpublished outbox rows of every tenant, oldest first.

    Rows are claimed with FOR UPDATE SKIP LOCKED (several relays share the work)
    and selected by `published_at IS NULL`, not by a high-water mark, so a row
    whose transaction commits after later ones is still published.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        sink: KafkaSink,
        batch_size: int = 500,
        interval: float = 0.2,
        sample_every: float = 15.0,
    ) -> None:
        self._pool = pool
        self._sink = sink
        self._batch_size = batch_size
        self._interval = interval
        self._wake = asyncio.Event()
        self._backlog_sample = Every(sample_every)

    def wake(self) -> None:
        """Publish now rather than at the next poll."""
        self._wake.set()

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it published."""
        async with UnitOfWork(self._pool) as uow:
            rows = await fetch_all(messaging.outbox_claim(uow.connection, limit=self._batch_size))
            if not rows:
                return 0
            await self._sink.send_many(
                [
                    (
                        row["topic"],
                        row["body"].encode(),  # jsonb's text: no decoding and re-encoding
                        None if row["message_key"] is None else row["message_key"].encode(),
                        _headers(row["event_id"], row["traceparent"]),
                    )
                    for row in rows
                ]
            )
            await messaging.outbox_mark_published(uow.connection, ids=[r["id"] for r in rows])
            await uow.commit()
        published_at = datetime.now(UTC)
        for topic, count in Counter(row["topic"] for row in rows).items():
            OUTBOX_PUBLISHED.labels(topic).inc(count)
        for row in rows:
            OUTBOX_PUBLISH_DELAY.observe((published_at - row["created_at"]).total_seconds())
        return len(rows)

    async def measure_backlog(self) -> int:
        """Count the unpublished rows of every tenant (and export the gauge)."""
        async with UnitOfWork(self._pool) as uow:
            backlog = int(await messaging.outbox_backlog(uow.connection))
        OUTBOX_BACKLOG.set(backlog)
        return backlog

    async def drain(self) -> int:
        """Publish until nothing is pending; returns how many rows were published.
        A batch shorter than the claim limit took everything there was: asking
        again would cost four round trips to learn that (rows committed since are
        announced by `wake`, or found at the next poll)."""
        total = 0
        while True:
            published = await retry_transient(self.publish_batch)
            total += published
            if published < self._batch_size:
                return total

    async def run(self) -> None:
        """Relay forever (until cancelled)."""
        while True:
            self._wake.clear()
            await self.drain()
            if self._backlog_sample.due():
                await retry_transient(self.measure_backlog)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
