"""A product bug the fault scenarios found (docs/reliability.md, "Findings"), since
fixed: an enrolment whose completion time was corrected before the certifier read its
`enrolment.completed` was never certified.

The orchestrator corrects the completion time of a still-complete enrolment when an
earlier passing attempt arrives late ("completion_time_corrected"), without a new
event. The certifier used to drop the event as stale, its `completed_at` no longer
being the enrolment's, and nothing else ever certified the enrolment; it now
certifies a complete enrolment from its row, at the corrected time.

This test plays that order deterministically: the certifier starts only once the
correction is committed.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from services.certifier import service as certifier
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.fleet import CERTIFIER
from shared.messaging.topics import topic_for
from shared.settings import Settings
from tests.support.events import enrolment_created, submission_created
from tests.support.fleet import configure, delivery_engine, free_port, running, send
from tests.support.journeys import NOW, certificates
from tests.support.kafka import drained, eventually
from tests.support.orchestration import (
    assignments_created,
    enrolment_status,
    orchestrator,
    reaches_status,
)
from tests.support.programmes import publish_sample


async def _completed_at(pool: asyncpg.Pool, tenant: uuid.UUID, enrolment: uuid.UUID) -> object:
    async with TenantUnitOfWork(pool, tenant) as uow:
        return await uow.connection.fetchval(
            "SELECT completed_at FROM enrolments WHERE id = $1", enrolment
        )


async def test_an_enrolment_whose_completion_time_is_corrected_is_still_certified(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    tenant, user, enrolment = sample.tenant_id, uuid.uuid4(), uuid.uuid4()

    def submission(
        key: str, minutes: int, score: float | None = None, passed: bool | None = None
    ) -> CloudEvent[Any]:
        return submission_created(
            tenant,
            assignment_id=links[key]["assignment_id"],
            user_id=user,
            evaluation_id=sample.evaluations[key],
            submitted_at=NOW + timedelta(minutes=minutes),
            score=score,
            passed=passed,
        )

    async with delivery_engine() as engine, orchestrator(settings, engine.port) as configured:
        await send(
            configured,
            enrolment_created(
                tenant, sample.programme_id, enrolled_at=NOW, enrolment_id=enrolment, user_id=user
            ),
        )
        links = await assignments_created(pool, tenant, enrolment, {"theory", "hazard", "report"})
        await send(
            configured,
            submission("theory", 10, score=90.0),
            submission("hazard", 20, score=80.0),
            submission("report", 30, passed=True),
        )
        await reaches_status(pool, tenant, enrolment, "completed")  # completed at minute 30
        # An earlier passing report arrives late: the enrolment was complete since minute 20.
        await send(configured, submission("report", 5, passed=True))

        async def corrected() -> bool:
            return await _completed_at(pool, tenant, enrolment) == NOW + timedelta(minutes=20)

        await eventually(corrected)

    # Only now does the certifier read the enrolment.completed of minute 30.
    async with running(certifier.run, configure(settings, engine_port=1, http_port=free_port())):
        topics = [topic_for(t, settings.topic_prefix) for t in CERTIFIER.consumes]
        await drained(
            settings.kafka_bootstrap_servers, CERTIFIER.group_id(settings.topic_prefix), topics
        )

    assert await enrolment_status(pool, tenant, enrolment) == "certified"
    [certificate] = await certificates(pool, tenant)
    assert certificate["status"] == "active"
    assert certificate["issued_at"] == NOW + timedelta(minutes=20)
