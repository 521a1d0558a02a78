"""Every orchestrator process runs a dispatcher; each assignment request is sent once
however many run, and a request claimed by a dispatcher that died is sent after its lease.

(Found by the fault tier, finding 5 of docs/reliability.md: every dispatcher read the
same due requests and sent them all, N processes multiplying the delivery engine's load.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx

from services.orchestrator.adapters.delivery import HttpDeliveryEngine
from services.orchestrator.adapters.ledger import claim_assignment_requests
from services.orchestrator.dispatcher import AssignmentDispatcher
from services.orchestrator.handlers import Orchestrator
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork, UnitOfWork
from shared.settings import Settings
from tests.support.events import enrolment_created
from tests.support.fleet import delivery_engine
from tests.support.programmes import publish_sample

NOW = datetime(2026, 3, 1, tzinfo=UTC)


async def record_requests(pool: asyncpg.Pool, enrolments: int) -> int:
    """Enrol learners on a three-requirement programme; returns the requests recorded."""
    sample = await publish_sample(pool, prerequisites=False)
    orchestrator = Orchestrator()
    for _ in range(enrolments):
        event = enrolment_created(sample.tenant_id, sample.programme_id, enrolled_at=NOW)
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            await orchestrator.on_enrolment_created(uow, event)
            await uow.commit()
    async with UnitOfWork(pool) as uow:
        return int(await uow.connection.fetchval("SELECT assignments_pending()"))


@contextlib.asynccontextmanager
async def dispatchers(
    settings: Settings, engine_url: str, count: int, lease_seconds: float = 60.0
) -> AsyncIterator[list[AssignmentDispatcher]]:
    """`count` dispatchers as separate processes would have them: a pool and an engine
    client each."""
    async with contextlib.AsyncExitStack() as stack:
        made = []
        for _ in range(count):
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            engine = HttpDeliveryEngine(engine_url)
            stack.push_async_callback(engine.close)
            made.append(
                AssignmentDispatcher(
                    pool, engine, Orchestrator(), batch_size=10, lease_seconds=lease_seconds
                )
            )
        yield made


async def engine_stats(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url) as client:
        stats: dict[str, int] = (await client.get("/_admin/stats")).json()
    return stats


async def test_concurrent_dispatchers_send_each_request_once(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    requests = await record_requests(pool, enrolments=20)
    assert requests == 60
    async with delivery_engine() as server:
        url = f"http://127.0.0.1:{server.port}"
        async with dispatchers(settings, url, count=3) as three:

            async def drain(dispatcher: AssignmentDispatcher) -> int:
                created = 0
                while done := await dispatcher.dispatch_due():
                    created += done
                return created

            created = await asyncio.gather(*(drain(d) for d in three))
        stats = await engine_stats(url)

    assert sum(created) == requests
    assert stats["created"] == requests
    assert stats["replayed"] == 0  # no request was sent twice
    async with UnitOfWork(pool) as uow:
        assert await uow.connection.fetchval("SELECT assignments_pending()") == 0


async def test_a_claim_whose_dispatcher_died_is_sent_after_its_lease(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    requests = await record_requests(pool, enrolments=2)
    async with UnitOfWork(pool) as uow:  # a dispatcher claims, commits, and dies
        claimed = await claim_assignment_requests(
            uow.connection, datetime.now(UTC), limit=100, lease_seconds=1.0
        )
        await uow.commit()
    assert len(claimed) == requests
    async with delivery_engine() as server:
        url = f"http://127.0.0.1:{server.port}"
        async with dispatchers(settings, url, count=1) as [survivor]:
            assert await survivor.dispatch_due() == 0  # still leased to the dead one
            await asyncio.sleep(1.2)
            assert await survivor.dispatch_due() == requests
        assert (await engine_stats(url))["created"] == requests
