"""A learner's journey through the running fleet (orchestrator, certifier, the
reference delivery engine), for tests that need a certified enrolment."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.certifier import service as certifier
from services.orchestrator import service as orchestrator
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.settings import Settings
from tests.support.events import enrolment_created, submission_created
from tests.support.fleet import (
    answering,
    configure,
    create_fleet_topics,
    delivery_engine,
    free_port,
    running,
    send,
)
from tests.support.kafka import eventually
from tests.support.programmes import Sample

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Fleet:
    settings: Settings
    verify_base: str


@contextlib.asynccontextmanager
async def fleet(settings: Settings) -> AsyncIterator[Fleet]:
    await create_fleet_topics(settings)
    async with delivery_engine() as engine:
        port = free_port()
        configured = configure(settings, engine_port=engine.port, http_port=port)
        orchestrating = configure(settings, engine_port=engine.port)
        async with running(orchestrator.run, orchestrating), running(certifier.run, configured):
            await answering(f"http://127.0.0.1:{port}")
            yield Fleet(configured, f"http://127.0.0.1:{port}")


async def certificates(pool: asyncpg.Pool, tenant: uuid.UUID) -> list[asyncpg.Record]:
    async with TenantUnitOfWork(pool, tenant) as uow:
        return await uow.connection.fetch("SELECT * FROM certificates ORDER BY created_at")


async def complete(
    pool: asyncpg.Pool, fleet: Fleet, sample: Sample
) -> tuple[uuid.UUID, dict[str, CloudEvent[Any]]]:
    """Enrol a learner and pass every requirement; returns the enrolment and submissions."""
    user, enrolment = uuid.uuid4(), uuid.uuid4()
    await send(
        fleet.settings,
        enrolment_created(
            sample.tenant_id,
            sample.programme_id,
            enrolled_at=NOW,
            enrolment_id=enrolment,
            user_id=user,
        ),
    )

    async def linked() -> dict[str, uuid.UUID]:
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            rows = await uow.connection.fetch(
                "SELECT r.key, a.assignment_id FROM assignments a JOIN programme_requirements r"
                " ON r.id = a.requirement_id WHERE a.enrolment_id = $1 AND a.status = 'created'",
                enrolment,
            )
        return {r["key"]: r["assignment_id"] for r in rows}

    async def all_linked() -> bool:
        return len(await linked()) == 3

    await eventually(all_linked)
    assignments = await linked()
    results: dict[str, dict[str, Any]] = {
        "theory": {"score": 90.0},
        "hazard": {"score": 80.0},
        "report": {"passed": True},
    }
    submissions = {}
    for minute, (key, result) in enumerate(results.items()):
        submissions[key] = submission_created(
            sample.tenant_id,
            assignment_id=assignments[key],
            user_id=user,
            evaluation_id=sample.evaluations[key],
            submitted_at=NOW + timedelta(minutes=minute),
            **result,
        )
    await send(fleet.settings, submissions["theory"], submissions["hazard"])

    async def two_met() -> bool:
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            met = await uow.connection.fetchval(
                "SELECT count(*) FROM progress WHERE enrolment_id = $1 AND status = 'met'",
                enrolment,
            )
        return bool(met == 2)

    await eventually(two_met)
    # The last requirement's submission completes the enrolment: its trace goes on.
    last = submissions["report"].model_copy(update={"traceparent": TRACEPARENT})
    submissions["report"] = last
    await send(fleet.settings, last)
    return enrolment, submissions
