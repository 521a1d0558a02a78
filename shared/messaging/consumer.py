"""The consumer pipeline every subscriber runs.

One message: decode and validate the CloudEvent -> open the tenant unit of work ->
claim the event id in the inbox -> call the handler -> commit. Messages that can
never be processed go to `<topic>.dlq` with context; transient faults are retried
with backoff and never dead-lettered. Every message ends in one canonical log line.

A batch, when the consumer has a batch handler: decode every message, group the
events by tenant (keeping their order), and apply each group in ONE tenant unit of
work: claim its event ids in one statement, hand the new ones to the batch
handler, commit. Every message's effects still run under its own tenant's
context. When a group fails for any reason but a transient fault (a bad message
in it, an unknown tenant), the transaction is rolled back and the group is redone
one message at a time, so one bad message costs its neighbours speed, never
correctness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from shared.db.queries import fetch_all, messaging
from shared.db.uow import TenantUnitOfWork
from shared.errors import PermanentError, UnknownTenant, is_transient
from shared.events import CloudEvent, EventDecodeError, decode_event
from shared.messaging.dead_letters import DeadLetterPublisher, Delivery
from shared.metrics import BATCH_FALLBACKS, BATCH_SIZE, HANDLING_SECONDS, MESSAGES
from shared.retry import retry_transient
from shared.telemetry import active_provider, event_span

log = structlog.get_logger("programmes.consumer")

Handler = Callable[[TenantUnitOfWork, CloudEvent[Any]], Awaitable[str]]
"""Applies one event inside its tenant's open unit of work; returns the outcome
("applied", "ignored", ...). Raises PermanentError for an event that can never
be applied. Must not commit: the pipeline does, after the inbox claim."""

BatchHandler = Callable[[TenantUnitOfWork, Sequence[CloudEvent[Any]]], Awaitable[list[str]]]
"""Applies one tenant's new events (claimed in the inbox, in offset order) inside
one open tenant unit of work, with the same effects as `Handler` applied to each
in turn; returns one outcome per event. Must not commit. Raising anything makes
the pipeline roll the group back and redo it message by message with `Handler`."""

DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class EventConsumer:
    """Runs `handler` for every event of `event_type` arriving on a topic."""

    name: str
    event_type: str
    pool: asyncpg.Pool
    dead_letters: DeadLetterPublisher
    handler: Handler
    max_event_bytes: int
    batch_handler: BatchHandler | None = None

    async def process_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Process a fetched batch; returns once every message is settled. Order is
        kept among the messages of each tenant."""
        if not deliveries:
            return
        BATCH_SIZE.labels(deliveries[0].topic).observe(len(deliveries))
        if self.batch_handler is None:
            for delivery in deliveries:
                await self.process(delivery)
            return
        groups: dict[UUID, list[tuple[Delivery, CloudEvent[Any]]]] = {}
        for delivery in deliveries:
            try:
                event = decode_event(delivery.value, self.event_type, self.max_event_bytes)
            except Exception:  # undecodable, or a failure nobody foresaw while decoding
                await self.process(delivery)  # dead-letters it, with its log line
                continue
            groups.setdefault(event.tenantid, []).append((delivery, event))
        # Tenants share no rows: their groups run side by side, each on its own
        # connection, so one group's round trips overlap another's work.
        await asyncio.gather(*(self._process_group(t, g) for t, g in groups.items()))

    async def _process_group(
        self, tenant_id: UUID, group: list[tuple[Delivery, CloudEvent[Any]]]
    ) -> None:
        started, started_ns = time.perf_counter(), time.time_ns()
        events = [event for _, event in group]
        try:
            outcomes = await retry_transient(lambda: self._apply_group(tenant_id, events))
        except Exception as error:
            if is_transient(error):  # pragma: no cover - retry_transient never gives up
                raise
            topic = group[0][0].topic
            BATCH_FALLBACKS.labels(topic).inc()
            log.warning(
                "batch group redone one message at a time",
                topic=topic,
                tenant=str(tenant_id),
                size=len(group),
                error_class=type(error).__name__,
                error=str(error)[:300],
            )
            for delivery, _ in group:
                await self.process(delivery)
            return
        self._settle_group(group, outcomes, time.perf_counter() - started, started_ns)

    def _settle_group(
        self,
        group: list[tuple[Delivery, CloudEvent[Any]]],
        outcomes: list[str],
        elapsed: float,
        started_ns: int,
    ) -> None:
        """`_settled` for every message of a group, with the per-message costs cut
        to what a replay of millions of duplicates can afford: metrics counted
        once per outcome, and the canonical line of a duplicate (a message with
        no effect) at DEBUG."""
        topic = group[0][0].topic
        for outcome, count in Counter(outcomes).items():
            MESSAGES.labels(topic, outcome).inc(count)
        handling = HANDLING_SECONDS.labels(topic)
        traced = active_provider() is not None
        quiet_duplicates = not log.is_enabled_for(logging.DEBUG)
        for (delivery, event), outcome in zip(group, outcomes, strict=True):
            handling.observe(elapsed)
            if outcome == DUPLICATE and quiet_duplicates and not traced:
                continue
            context = _context(delivery, event)
            if traced:
                with event_span(
                    self.name, event.type, event.traceparent, context, start_time=started_ns
                ) as span:
                    span.set_attributes(
                        {"programmes.outcome": outcome, "programmes.batch": len(group)}
                    )
            (log.debug if outcome == DUPLICATE else log.info)(
                "message handled",
                event_type=self.event_type,
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 2),
                batch=len(group),
                **context,
            )
        if quiet_duplicates and (duplicates := outcomes.count(DUPLICATE)):
            log.info(
                "duplicates skipped",
                topic=topic,
                tenant=str(group[0][1].tenantid),
                duplicates=duplicates,
                batch=len(group),
            )

    async def _apply_group(self, tenant_id: UUID, events: list[CloudEvent[Any]]) -> list[str]:
        assert self.batch_handler is not None
        async with TenantUnitOfWork(self.pool, tenant_id) as uow:
            rows = await fetch_all(
                messaging.claim_events(
                    uow.connection,
                    consumer=self.name,
                    event_ids=[e.id for e in events],
                    event_types=[e.type for e in events],
                )
            )
            claimed = {row["event_id"] for row in rows}
            outcomes = [DUPLICATE] * len(events)
            fresh: list[int] = []
            for index, event in enumerate(events):
                if event.id in claimed:  # the first of repeated ids in the batch only
                    claimed.discard(event.id)
                    fresh.append(index)
            if fresh:
                results = await self.batch_handler(uow, [events[i] for i in fresh])
                if len(results) != len(fresh):
                    raise RuntimeError(f"batch handler gave {len(results)} outcomes")
                for index, outcome in zip(fresh, results, strict=True):
                    outcomes[index] = outcome
            await uow.commit()
            return outcomes

    async def process(self, delivery: Delivery) -> str:
        """Settle one message: applied, skipped, or dead-lettered. Never raises for
        bad input; keeps retrying transient faults until they pass or the task is
        cancelled."""
        started = time.perf_counter()
        context = _context(delivery)
        with structlog.contextvars.bound_contextvars(**context):
            try:
                event = decode_event(delivery.value, self.event_type, self.max_event_bytes)
                context.update(tenant=str(event.tenantid), event_id=str(event.id))
                with (
                    structlog.contextvars.bound_contextvars(**context),
                    event_span(self.name, event.type, event.traceparent, context) as span,
                ):
                    outcome = await retry_transient(lambda: self._apply(event))
                    span.set_attribute("programmes.outcome", outcome)
            except (EventDecodeError, PermanentError) as error:
                outcome = await self._dead_letter(delivery, error.error_class, str(error), context)
            except Exception as error:
                if is_transient(error):  # pragma: no cover - retry_transient never gives up
                    raise
                # An unexpected failure is a bug or bad data we did not foresee:
                # park the message rather than stall the partition behind it.
                log.exception("unexpected failure handling message", **context)
                outcome = await self._dead_letter(
                    delivery, type(error).__name__, str(error) or repr(error), context
                )
            self._settled(delivery, context, outcome, time.perf_counter() - started)
            return outcome

    def _settled(
        self,
        delivery: Delivery,
        context: dict[str, Any],
        outcome: str,
        elapsed: float,
        batch: int = 1,
    ) -> None:
        """The metrics and the canonical log line of one settled message."""
        MESSAGES.labels(delivery.topic, outcome).inc()
        HANDLING_SECONDS.labels(delivery.topic).observe(elapsed)
        log.info(
            "message handled",
            event_type=self.event_type,
            outcome=outcome,
            duration_ms=round(elapsed * 1000, 2),
            batch=batch,
            **context,
        )

    async def _apply(self, event: CloudEvent[Any]) -> str:
        async with TenantUnitOfWork(self.pool, event.tenantid) as uow:
            conn = uow.connection
            if not await messaging.tenant_known(conn):
                raise UnknownTenant(f"tenant {event.tenantid} is not known")
            claimed = await messaging.claim_event(
                conn, consumer=self.name, event_id=event.id, event_type=event.type
            )
            if not claimed:
                return DUPLICATE
            outcome = await self.handler(uow, event)
            await uow.commit()
            return outcome

    async def _dead_letter(
        self, delivery: Delivery, error_class: str, message: str, context: dict[str, Any]
    ) -> str:
        context["error_class"] = error_class
        context["error"] = message[:500]
        await retry_transient(lambda: self.dead_letters.publish(delivery, error_class, message))
        return DEAD_LETTERED


def _context(delivery: Delivery, event: CloudEvent[Any] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }
    if event is not None:
        context.update(tenant=str(event.tenantid), event_id=str(event.id))
    return context
