"""The consumer pipeline every subscriber runs, message by message:

decode and validate the CloudEvent -> open the tenant unit of work -> claim the
event id in the inbox -> call the handler -> commit. Messages that can never be
processed go to `<topic>.dlq` with context; transient faults are retried with
backoff and never dead-lettered. Every message ends in one canonical log line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from shared.db.queries import messaging
from shared.db.uow import TenantUnitOfWork
from shared.errors import PermanentError, UnknownTenant, is_transient
from shared.events import CloudEvent, EventDecodeError, decode_event
from shared.messaging.dead_letters import DeadLetterPublisher, Delivery
from shared.metrics import BATCH_SIZE, HANDLING_SECONDS, MESSAGES
from shared.retry import retry_transient

log = structlog.get_logger("programmes.consumer")

Handler = Callable[[TenantUnitOfWork, CloudEvent[Any]], Awaitable[str]]
"""Applies one event inside its tenant's open unit of work; returns the outcome
("applied", "ignored", ...). Raises PermanentError for an event that can never
be applied. Must not commit: the pipeline does, after the inbox claim."""

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

    async def process_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Process a fetched batch in order; returns once every message is settled."""
        if deliveries:
            BATCH_SIZE.labels(deliveries[0].topic).observe(len(deliveries))
        for delivery in deliveries:
            await self.process(delivery)

    async def process(self, delivery: Delivery) -> str:
        """Settle one message: applied, skipped, or dead-lettered. Never raises for
        bad input; keeps retrying transient faults until they pass or the task is
        cancelled."""
        started = time.perf_counter()
        context: dict[str, Any] = {
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
        }
        with structlog.contextvars.bound_contextvars(**context):
            try:
                event = decode_event(delivery.value, self.event_type, self.max_event_bytes)
                context.update(tenant=str(event.tenantid), event_id=str(event.id))
                with structlog.contextvars.bound_contextvars(**context):
                    outcome = await retry_transient(lambda: self._apply(event))
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
            elapsed = time.perf_counter() - started
            MESSAGES.labels(delivery.topic, outcome).inc()
            HANDLING_SECONDS.labels(delivery.topic).observe(elapsed)
            log.info(
                "message handled",
                event_type=self.event_type,
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 2),
                **context,
            )
            return outcome

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
