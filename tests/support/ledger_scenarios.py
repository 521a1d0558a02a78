"""Ledger scenarios shared by the property tests: a learner enrolled on the
sample programme with every requirement assigned, and generated submissions
(with score versions) for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import strategies as st

from services.orchestrator.domain.model import ProgrammeSnapshot
from services.orchestrator.handlers import Orchestrator
from services.orchestrator.records import Link
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.messaging.consumer import BatchHandler, EventConsumer
from shared.messaging.dead_letters import Delivery
from tests.support.events import enrolment_created, score_remediated, submission_created
from tests.support.programmes import Sample

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEYS = ("theory", "hazard", "report")


class NoDeadLetters:
    """Every event of these scenarios is valid: a dead letter is a failure."""

    async def publish(self, delivery: Delivery, error_class: str, message: str) -> None:
        raise AssertionError(f"dead-lettered: {error_class}: {message}")


@dataclass(frozen=True)
class Submission:
    requirement: str
    minute: int
    versions: tuple[tuple[float | None, bool | None], ...]  # version 1, 2, ... results


results = st.tuples(st.none() | st.integers(0, 100).map(float), st.none() | st.booleans())
submissions = st.builds(
    Submission,
    st.sampled_from(KEYS),
    st.integers(0, 500),
    st.lists(results, min_size=1, max_size=3).map(tuple),
)
scenarios = st.lists(submissions, min_size=1, max_size=6, unique_by=lambda s: s.minute)


def consumers_for(
    pool: asyncpg.Pool, orchestrator: Orchestrator, *, batched: bool = False
) -> dict[str, EventConsumer]:
    """The orchestrator's consumer pipelines, with batch handlers when `batched`."""
    handlers = {
        "enrolment.created": orchestrator.on_enrolment_created,
        "submission.created": orchestrator.on_submission_created,
        "score.remediated": orchestrator.on_score_remediated,
    }
    batch_handlers: dict[str, BatchHandler] = {
        "submission.created": orchestrator.on_submissions_created,
        "score.remediated": orchestrator.on_scores_remediated,
    }
    return {
        t: EventConsumer(
            "orchestrator",
            t,
            pool,
            NoDeadLetters(),  # type: ignore[arg-type]
            h,
            1 << 20,
            batch_handlers.get(t) if batched else None,
        )
        for t, h in handlers.items()
    }


async def deliver(consumers: dict[str, EventConsumer], event: CloudEvent[Any]) -> None:
    delivery = Delivery(event.type, 0, 0, None, event.to_bytes(), ())
    await consumers[event.type].process(delivery)


async def enrol_and_link(
    pool: asyncpg.Pool, consumers: dict[str, EventConsumer], sample: Sample
) -> tuple[uuid.UUID, uuid.UUID, dict[str, uuid.UUID]]:
    """Enrol a learner; give every requirement an assignment id, as the engine would."""
    user, enrolment = uuid.uuid4(), uuid.uuid4()
    await deliver(
        consumers,
        enrolment_created(
            sample.tenant_id,
            sample.programme_id,
            enrolled_at=T0,
            enrolment_id=enrolment,
            user_id=user,
        ),
    )
    orchestrator = Orchestrator()
    assignments: dict[str, uuid.UUID] = {}
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        snapshot = ProgrammeSnapshot.from_json(
            await uow.connection.fetchval("SELECT snapshot FROM enrolments")
        )
    for requirement in snapshot.requirements:
        assignments[requirement.key] = uuid.uuid4()
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            await orchestrator.on_assignment_created(
                uow, Link(enrolment, requirement.id, user), assignments[requirement.key], T0
            )
            await uow.commit()
    return enrolment, user, assignments


def submission_id_of(sample: Sample, s: Submission) -> uuid.UUID:
    """Unique per example (tenant): reusing another tenant's ids is dead-lettered."""
    return uuid.uuid5(sample.tenant_id, str(s.minute))


def scenario_events(
    sample: Sample, user: uuid.UUID, assignments: dict[str, uuid.UUID], scenario: list[Submission]
) -> list[CloudEvent[Any]]:
    events = []
    for s in scenario:
        submission_id = submission_id_of(sample, s)
        at = T0 + timedelta(minutes=s.minute)
        score, passed = s.versions[0]
        events.append(
            submission_created(
                sample.tenant_id,
                assignment_id=assignments[s.requirement],
                user_id=user,
                evaluation_id=sample.evaluations[s.requirement],
                submitted_at=at,
                score=score,
                passed=passed,
                submission_id=submission_id,
            )
        )
        for version, (score, passed) in enumerate(s.versions[1:], start=2):
            events.append(
                score_remediated(
                    sample.tenant_id,
                    submission_id=submission_id,
                    score_version=version,
                    remediated_at=at + timedelta(days=version),
                    score=score,
                    passed=passed,
                )
            )
    return events
