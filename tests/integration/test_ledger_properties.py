"""Properties of the ledger on the real database: whatever the order events
arrive in, and however often, the ledger ends as the pure rules say."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.orchestrator.adapters.ledger import Ledger
from services.orchestrator.domain import rules
from services.orchestrator.domain.model import Attempt, ProgrammeSnapshot
from services.orchestrator.handlers import Orchestrator
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.settings import Settings
from tests.support.ledger_scenarios import (
    T0,
    Submission,
    consumers_for,
    deliver,
    enrol_and_link,
    scenario_events,
    scenarios,
    submission_id_of,
)
from tests.support.programmes import Sample, publish_sample


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
                    submission_id_of(sample, s),
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
        consumers = consumers_for(pool, Orchestrator())
        enrolment, user, assignments = await enrol_and_link(pool, consumers, sample)
        events = scenario_events(sample, user, assignments, scenario)
        order = events + events[: len(events) // 2]  # some delivered twice
        random.Random(seed).shuffle(order)
        for event in order:
            await deliver(consumers, event)
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
