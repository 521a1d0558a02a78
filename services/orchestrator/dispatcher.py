"""Sends recorded assignment requests to the delivery engine, outside any
consumer transaction: a slow or unavailable engine delays assignments but never
loses one and never stalls a partition. Requests failing are retried with
exponential backoff; the Idempotency-Key makes every retry safe.

Every orchestrator process runs a dispatcher. Each claims the requests it sends
(a lease, taken with SKIP LOCKED), so a request is sent once however many
processes run; a dispatcher that dies leaves its claims to run out."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog

from services.orchestrator.adapters.delivery import AssignmentCall, DeliveryEngine, DeliveryError
from services.orchestrator.adapters.ledger import (
    Ledger,
    claim_assignment_requests,
    pending_assignment_requests,
)
from services.orchestrator.handlers import Orchestrator
from services.orchestrator.records import AssignmentRequest, Link
from shared.db.uow import TenantUnitOfWork, UnitOfWork
from shared.metrics import ASSIGNMENT_REQUESTS, ASSIGNMENT_REQUESTS_PENDING, Every
from shared.retry import retry_transient

log = structlog.get_logger("programmes.dispatcher")
MAX_DELAY_SECONDS = 300.0


def backoff_seconds(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Delay before the next try after `attempts` failures: 0.5 s doubling, capped, jittered."""
    base = min(MAX_DELAY_SECONDS, 0.5 * 2.0 ** min(attempts, 20))
    return float(base * (0.5 + rng() / 2))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AssignmentDispatcher:
    """Works through due assignment requests of every tenant."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: DeliveryEngine,
        orchestrator: Orchestrator,
        *,
        batch_size: int = 100,
        interval: float = 0.5,
        lease_seconds: float = 60.0,
        sample_every: float = 15.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._engine = engine
        self._orchestrator = orchestrator
        self._batch_size = batch_size
        self._interval = interval
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._pending_sample = Every(sample_every)

    def wake(self) -> None:
        """Dispatch now rather than at the next poll."""
        self._wake.set()

    async def dispatch_due(self) -> int:
        """One pass over the requests due now that no other dispatcher holds; returns
        how many were created."""
        async with UnitOfWork(self._pool) as uow:
            claimed = await claim_assignment_requests(
                uow.connection, self._clock(), self._batch_size, self._lease_seconds
            )
            await uow.commit()
        # Claims past most of their lease are left to run out (another dispatcher may
        # take them then): with a slow engine, a batch can outlast its lease.
        deadline = time.monotonic() + 0.8 * self._lease_seconds
        created = 0
        for tenant_id, link in claimed:
            if time.monotonic() > deadline:
                break
            created += await self._dispatch(tenant_id, link)
        if self._pending_sample.due():
            async with UnitOfWork(self._pool) as uow:
                ASSIGNMENT_REQUESTS_PENDING.set(await pending_assignment_requests(uow.connection))
        return created

    async def _dispatch(self, tenant_id: UUID, link: Link) -> int:
        async with TenantUnitOfWork(self._pool, tenant_id) as uow:
            request = await Ledger(uow.connection).assignment_request(link)
        if request is None:
            return 0  # created meanwhile by another dispatcher
        try:
            assignment_id = await self._engine.create_assignment(_call(tenant_id, link, request))
        except DeliveryError as error:
            ASSIGNMENT_REQUESTS.labels("failed").inc()
            delay = backoff_seconds(request.attempts)
            log.warning("assignment request failed", error=str(error), retry_in_s=round(delay, 2))
            async with TenantUnitOfWork(self._pool, tenant_id) as uow:
                await Ledger(uow.connection).defer_assignment(link, str(error), delay)
                await uow.commit()
            return 0
        ASSIGNMENT_REQUESTS.labels("created").inc()
        async with TenantUnitOfWork(self._pool, tenant_id) as uow:
            await self._orchestrator.on_assignment_created(uow, link, assignment_id, self._clock())
            await uow.commit()
        return 1

    async def run(self) -> None:
        """Dispatch forever (until cancelled)."""
        while True:
            self._wake.clear()
            while await retry_transient(self.dispatch_due):
                pass
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass


def _call(tenant_id: UUID, link: Link, request: AssignmentRequest) -> AssignmentCall:
    return AssignmentCall(
        tenant_id=tenant_id,
        org_unit_id=request.org_unit_id,
        user_id=link.user_id,
        evaluation_id=request.evaluation_id,
        enrolment_id=link.enrolment_id,
        requirement_id=link.requirement_id,
        idempotency_key=request.idempotency_key,
    )
