"""Properties of the ledger on the real database: whatever the order events
arrive in, and however often, the ledger ends as the pure rules say."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.orchestrator.adapters.ledger import Ledger, Link
from services.orchestrator.domain import rules
from services.orchestrator.domain.model import Attempt, ProgrammeSnapshot
from services.orchestrator.handlers import Orchestrator
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.messaging.consumer import EventConsumer
from shared.messaging.dead_letters import Delivery
from shared.settings import Settings
from tests.support.events import enrolment_created, score_remediated, submission_created
from tests.support.programmes import Sample, publish_sample

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


def _consumers(pool: asyncpg.Pool, orchestrator: Orchestrator) -> dict[str, EventConsumer]:
    handlers = {
        "enrolment.created": orchestrator.on_enrolment_created,
        "submission.created": orchestrator.on_submission_created,
        "score.remediated": orchestrator.on_score_remediated,
    }
    return {
        t: EventConsumer("orchestrator", t, pool, NoDeadLetters(), h, 1 << 20)  # type: ignore[arg-type]
        for t, h in handlers.items()
    }


async def _deliver(consumers: dict[str, EventConsumer], event: CloudEvent[Any]) -> None:
    delivery = Delivery(event.type, 0, 0, None, event.to_bytes(), ())
    await consumers[event.type].process(delivery)


async def _enrol_and_link(
    pool: asyncpg.Pool, consumers: dict[str, EventConsumer], sample: Sample
) -> tuple[uuid.UUID, uuid.UUID, dict[str, uuid.UUID]]:
    """Enrol a learner; give every requirement an assignment id, as the engine would."""
    user, enrolment = uuid.uuid4(), uuid.uuid4()
    await _deliver(
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


def _submission_id(sample: Sample, s: Submission) -> uuid.UUID:
    """Unique per example (tenant): reusing another tenant's ids is dead-lettered."""
    return uuid.uuid5(sample.tenant_id, str(s.minute))


def _events(
    sample: Sample, user: uuid.UUID, assignments: dict[str, uuid.UUID], scenario: list[Submission]
) -> list[CloudEvent[Any]]:
    events = []
    for s in scenario:
        submission_id = _submission_id(sample, s)
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


def _oracle(
    sample: Sample, snapshot: ProgrammeSnapshot, scenario: list[Submission]
) -> dict[str, Any]:
    by_key = {r.key: r for r in snapshot.requirements}
    states = {}
    for key, requirement in by_key.items():
        attempts = []
        for s in scenario:
            if s.requirement != key:
                continue
            version = len(s.versions)
            score, passed = s.versions[-1]
            at = T0 + timedelta(minutes=s.minute)
            attempts.append(
                Attempt(
                    _submission_id(sample, s),
                    version,
                    None if score is None else Decimal(str(score)),
                    passed,
                    at,
                    at if version == 1 else at + timedelta(days=version),
                )
            )
        states[requirement.id] = rules.evaluate_requirement(requirement, attempts)
    met_at = {rid: s.met_at for rid, s in states.items() if s.met_at is not None}
    complete = rules.is_complete(snapshot, met_at)
    return {
        "progress": {
            rid: (s.status, s.submission_id, s.score_version, s.attempt_count, s.met_at)
            for rid, s in states.items()
        },
        "status": "completed" if complete else "in_progress",
        "completed_at": rules.completion_time(snapshot, met_at) if complete else None,
    }


async def _ledger(pool: asyncpg.Pool, sample: Sample, enrolment: uuid.UUID) -> dict[str, Any]:
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        ledger = Ledger(uow.connection)
        locked = await ledger.lock_enrolment(enrolment)
        rows = await ledger.progress(enrolment)
    assert locked is not None
    return {
        "snapshot": locked.snapshot,
        "progress": {
            rid: (
                r.state.status,
                r.state.submission_id,
                r.state.score_version,
                r.state.attempt_count,
                r.state.met_at,
            )
            for rid, r in rows.items()
        },
        "status": locked.status,
        "completed_at": locked.completed_at,
    }


async def _run(settings_: Settings, scenario: list[Submission], seed: int) -> None:
    pool = await create_pool(settings_)
    try:
        sample = await publish_sample(pool, prerequisites=False)
        consumers = _consumers(pool, Orchestrator())
        enrolment, user, assignments = await _enrol_and_link(pool, consumers, sample)
        events = _events(sample, user, assignments, scenario)
        order = events + events[: len(events) // 2]  # some delivered twice
        random.Random(seed).shuffle(order)
        for event in order:
            await _deliver(consumers, event)
        ledger = await _ledger(pool, sample, enrolment)
        expected = _oracle(sample, ledger.pop("snapshot"), scenario)
        assert ledger == expected
    finally:
        await pool.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios, seed=st.integers(0, 2**32))
def test_any_order_and_any_duplicates_end_in_the_oracles_ledger(
    settings: Settings, scenario: list[Submission], seed: int
) -> None:
    asyncio.run(_run(settings, scenario, seed))
