"""One pass of the renewer at a given `now` (`programmes renew`, and each turn of
the loop): open the renewals that are due, then expire what has expired.

Renewals go first so that a certificate which expired before any pass saw its
window still gets its renewal enrolment. Each scan pages through the due
certificates of every tenant with a cursor (so a pass always ends) and settles
each page by tenant, up to GROUP_SIZE certificates of one tenant in one tenant
unit of work with one statement per step (`Renewer.settle_many`), a few groups
at a time. A group that fails is settled again one certificate per unit of
work, so one certificate that cannot be settled holds up no other. Settling is
idempotent and guarded by row locks: running the pass again, or two at once,
changes nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from uuid import UUID

import asyncpg
import structlog

from services.renewer.adapters.certificates import START, Due, expiries_due, renewals_due
from services.renewer.handlers import Renewer
from services.renewer.metrics import (
    CERTIFICATES_EXPIRED,
    PASS_SECONDS,
    RENEWALS_OPENED,
    SETTLE_FAILURES,
)
from shared.db.pool import Connection
from shared.db.uow import TenantUnitOfWork, UnitOfWork
from shared.retry import retry_transient
from shared.settings import Settings

log = structlog.get_logger("programmes.renewer")

BATCH_SIZE = 1000
GROUP_SIZE = 250  # certificates of one tenant settled in one transaction
CONCURRENCY = 4
Scan = Callable[[Connection, datetime, Due, int], Awaitable[list[Due]]]


@dataclass(frozen=True)
class PassResult:
    """What one pass did."""

    renewals_opened: int = 0
    certificates_expired: int = 0
    failed: int = 0  # certificates left for the next pass (see the log)

    def __add__(self, other: PassResult) -> PassResult:
        return PassResult(
            self.renewals_opened + other.renewals_opened,
            self.certificates_expired + other.certificates_expired,
            self.failed + other.failed,
        )


def _no_op() -> None:
    pass


async def run_pass(
    pool: asyncpg.Pool,
    settings: Settings,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    concurrency: int = CONCURRENCY,
    group_size: int = GROUP_SIZE,
    on_events_enqueued: Callable[[], None] = _no_op,
) -> PassResult:
    """Settle every certificate due at `now` (an aware datetime), in every tenant."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    renewer = Renewer(settings.topic_prefix, settings.public_base_url, on_events_enqueued)
    slots = min(concurrency, pool.get_max_size())
    sweep = _Sweep(pool, renewer, now, batch_size, slots, group_size)
    started = time.perf_counter()
    result = await sweep.over(renewals_due) + await sweep.over(expiries_due)
    elapsed = time.perf_counter() - started
    PASS_SECONDS.observe(elapsed)
    log.info(
        "renewer pass",
        now=now.isoformat(),
        renewals_opened=result.renewals_opened,
        certificates_expired=result.certificates_expired,
        failed=result.failed,
        duration_ms=round(elapsed * 1000, 1),
    )
    return result


class _Sweep:
    """Pages through one scan's due certificates and settles them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        renewer: Renewer,
        now: datetime,
        batch_size: int,
        concurrency: int,
        group_size: int,
    ) -> None:
        self._pool = pool
        self._renewer = renewer
        self._now = now
        self._batch_size = batch_size
        self._group_size = max(1, group_size)
        self._slots = asyncio.Semaphore(max(1, concurrency))

    async def over(self, scan: Scan) -> PassResult:
        """Settle everything `scan` finds due, batch after batch."""
        total, cursor = PassResult(), START
        while True:
            batch = await retry_transient(partial(self._scan, scan, cursor))
            results = await asyncio.gather(*(self._settle_group(g) for g in self._groups(batch)))
            total = sum(results, total)
            if len(batch) < self._batch_size:
                return total
            # Past the last key, whatever became of it: a certificate that could
            # not be settled waits for the next pass instead of looping this one.
            cursor = batch[-1]

    def _groups(self, batch: list[Due]) -> list[list[Due]]:
        """The batch split by tenant, in groups of at most `group_size`."""
        by_tenant: dict[UUID, list[Due]] = {}
        for due in batch:
            by_tenant.setdefault(due.tenant_id, []).append(due)
        return [
            dues[i : i + self._group_size]
            for dues in by_tenant.values()
            for i in range(0, len(dues), self._group_size)
        ]

    async def _scan(self, scan: Scan, after: Due) -> list[Due]:
        async with UnitOfWork(self._pool) as uow:
            return await scan(uow.connection, self._now, after, self._batch_size)

    async def _settle_group(self, group: list[Due]) -> PassResult:
        """Settle one tenant's group in one transaction; if that fails for any other
        reason than a passing fault, one certificate at a time, so that one
        certificate that cannot be settled holds up no other."""
        async with self._slots:
            try:
                return await retry_transient(partial(self._settle_group_once, group))
            except Exception:
                log.warning(
                    "group not settled, settling one by one",
                    tenant=str(group[0].tenant_id),
                    certificates=len(group),
                    exc_info=True,
                )
        results = await asyncio.gather(*(self._settle(due) for due in group))
        return sum(results, PassResult())

    async def _settle_group_once(self, group: list[Due]) -> PassResult:
        async with TenantUnitOfWork(self._pool, group[0].tenant_id) as uow:
            decisions = await self._renewer.settle_many(
                uow, [due.certificate_id for due in group], self._now
            )
            await uow.commit()
        opened = sum(d.open_renewal for d in decisions)
        expired = sum(d.expire for d in decisions)
        RENEWALS_OPENED.inc(opened)
        CERTIFICATES_EXPIRED.inc(expired)
        return PassResult(opened, expired)

    async def _settle(self, due: Due) -> PassResult:
        async with self._slots:
            try:
                return await retry_transient(partial(self._settle_once, due))
            except Exception:
                # One certificate that cannot be settled must not hold up every
                # other renewal and expiry of the pass.
                SETTLE_FAILURES.inc()
                log.exception(
                    "certificate not settled",
                    tenant=str(due.tenant_id),
                    certificate=str(due.certificate_id),
                )
                return PassResult(failed=1)

    async def _settle_once(self, due: Due) -> PassResult:
        async with TenantUnitOfWork(self._pool, due.tenant_id) as uow:
            done = await self._renewer.settle(uow, due.certificate_id, self._now)
            await uow.commit()
        RENEWALS_OPENED.inc(done.open_renewal)
        CERTIFICATES_EXPIRED.inc(done.expire)
        return PassResult(int(done.open_renewal), int(done.expire))
