"""The batch path is the one-message path, faster: the same events applied one by
one to a database and in batches (of any size, split anywhere) to an identical
copy leave identical tables, down to the history entries and the ids of the
events produced. A bad message in a batch costs its neighbours nothing."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from services.orchestrator.handlers import Orchestrator
from shared.db.pool import create_pool
from shared.events import CloudEvent
from shared.messaging.consumer import EventConsumer
from shared.messaging.dead_letters import Delivery
from shared.metrics import BATCH_FALLBACKS
from shared.settings import Settings
from tests.support.events import score_remediated, submission_created
from tests.support.ledger_scenarios import (
    T0,
    Submission,
    consumers_for,
    deliver,
    enrol_and_link,
    scenario_events,
    scenarios,
)
from tests.support.programmes import Sample, publish_sample
from tests.support.services import Services, database_copy, with_database

# Every table the orchestrator writes, without the columns set by now().
TABLES = {
    "submissions": "SELECT tenant_id, id, assignment_id, user_id, evaluation_id, submitted_at,"
    " event_id FROM submissions ORDER BY 1, 2",
    "submission_scores": "SELECT tenant_id, submission_id, score_version, score, passed,"
    " correction_batch_id, effective_at, event_id FROM submission_scores ORDER BY 1, 2, 3",
    "progress": "SELECT tenant_id, enrolment_id, requirement_id, status, submission_id,"
    " score_version, score, passed, attempt_count, completed_at, decision_seq FROM progress"
    " ORDER BY 1, 2, 3",
    "progress_history": "SELECT tenant_id, enrolment_id, requirement_id, seq, status,"
    " previous_status, reason, submission_id, score_version, score, passed, attempt_count,"
    " event_id, event_type, decided_at FROM progress_history ORDER BY 1, 2, 3, 4",
    "enrolments": "SELECT tenant_id, id, status, completed_at, certified_at FROM enrolments"
    " ORDER BY 1, 2",
    "enrolment_history": "SELECT tenant_id, enrolment_id, seq, status, previous_status, reason,"
    " requirement_id, event_id, event_type, decided_at FROM enrolment_history ORDER BY 1, 2, 3",
    "assignments": "SELECT tenant_id, enrolment_id, requirement_id, user_id, idempotency_key,"
    " evaluation_id, org_unit_id, status, assignment_id FROM assignments ORDER BY 1, 2, 3, 4",
    "outbox": "SELECT tenant_id, topic, message_key, event_id, event::text FROM outbox"
    " ORDER BY 1, 4",
    "inbox": "SELECT tenant_id, consumer, event_id, event_type FROM inbox ORDER BY 1, 2, 3",
}


async def _tables(admin_url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(admin_url)  # a superuser: sees every tenant's rows
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in TABLES.items()}
    finally:
        await conn.close()


def _deliveries(events: list[CloudEvent[Any]]) -> list[Delivery]:
    return [Delivery(e.type, 0, i, None, e.to_bytes(), ()) for i, e in enumerate(events)]


def _batches(events: list[CloudEvent[Any]], rng: random.Random) -> list[list[CloudEvent[Any]]]:
    """Runs of one event type (one topic), cut at random places."""
    batches: list[list[CloudEvent[Any]]] = []
    for event in events:
        if batches and batches[-1][0].type == event.type and rng.random() < 0.8:
            batches[-1].append(event)
        else:
            batches.append([event])
    return batches


def _fallbacks() -> float:
    return sum(
        float(BATCH_FALLBACKS.labels(topic)._value.get())
        for topic in ("submission.created", "score.remediated")
    )


async def _enrol_two(
    url: str, prerequisites: bool
) -> tuple[Sample, list[tuple[uuid.UUID, dict[str, uuid.UUID]]]]:
    """The sample programme, and two learners enrolled with every requirement assigned."""
    pool = await create_pool(Settings(database_url=url))
    try:
        sample = await publish_sample(pool, prerequisites=prerequisites)
        setup = consumers_for(pool, Orchestrator())
        learners = []
        for _ in range(2):
            _, user, assignments = await enrol_and_link(pool, setup, sample)
            learners.append((user, assignments))
        return sample, learners
    finally:
        await pool.close()


async def _certified_earlier(admin_url: str) -> None:
    """Give every enrolment a certification time (as a superuser), so that a batch
    which sends one back in progress must clear it as the one-message path does."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("UPDATE enrolments SET certified_at = $1", T0)
    finally:
        await conn.close()


def _events(
    sample: Sample,
    learners: list[tuple[uuid.UUID, dict[str, uuid.UUID]]],
    scenario: list[Submission],
) -> list[CloudEvent[Any]]:
    (user, assignments), (user2, assignments2) = learners
    later = [replace(s, minute=s.minute + 1000) for s in scenario]
    return [
        *scenario_events(sample, user, assignments, scenario),
        *scenario_events(sample, user2, assignments2, later),
        submission_created(  # not a programme assignment: recorded, ignored
            sample.tenant_id,
            assignment_id=uuid.uuid4(),
            user_id=user,
            evaluation_id=sample.evaluations["theory"],
            submitted_at=T0,
            score=99.0,
        ),
        submission_created(  # at least one decision in every example
            sample.tenant_id,
            assignment_id=assignments["report"],
            user_id=user,
            evaluation_id=sample.evaluations["report"],
            submitted_at=T0 + timedelta(minutes=999),
            score=100.0,
            passed=True,
        ),
        score_remediated(  # a correction for a submission never seen (yet)
            sample.tenant_id,
            submission_id=uuid.uuid4(),
            score_version=2,
            remediated_at=T0 + timedelta(days=1),
            score=10.0,
        ),
    ]


async def _one_by_one(url: str, order: list[CloudEvent[Any]]) -> None:
    pool = await create_pool(Settings(database_url=url))
    try:
        consumers = consumers_for(pool, Orchestrator())
        for event in order:
            await deliver(consumers, event)
    finally:
        await pool.close()


async def _in_batches(url: str, order: list[CloudEvent[Any]], rng: random.Random) -> None:
    pool = await create_pool(Settings(database_url=url))
    try:
        consumers = consumers_for(pool, Orchestrator(), batched=True)
        fallbacks = _fallbacks()
        for batch in _batches(order, rng):
            await consumers[batch[0].type].process_batch(_deliveries(batch))
        assert _fallbacks() == fallbacks, "a batch fell back to one message at a time"
    finally:
        await pool.close()


async def _run(
    services: Services,
    template: str,
    scenario: list[Submission],
    prerequisites: bool,
    seed: int,
) -> None:
    rng = random.Random(seed)
    admin_url, app_url = services.admin_url, services.app_url
    async with database_copy(admin_url, template, "programmes_eq") as one:
        sample, learners = await _enrol_two(with_database(app_url, one), prerequisites)
        await _certified_earlier(with_database(admin_url, one))
        events = _events(sample, learners, scenario)
        order = events + rng.sample(events, len(events) // 2)  # some delivered twice
        rng.shuffle(order)
        async with database_copy(admin_url, one, "programmes_eq") as batched:
            await _one_by_one(with_database(app_url, one), order)
            await _in_batches(with_database(app_url, batched), order, rng)
            expected = await _tables(with_database(admin_url, one))
            actual = await _tables(with_database(admin_url, batched))
    assert expected["progress_history"], "the scenario decided nothing"
    for table in TABLES:
        assert actual[table] == expected[table], table


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    # Two databases per example: shrinking a failure would take many minutes;
    # the failing example (and its seed) is printed as generated.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(scenario=scenarios, prerequisites=st.booleans(), seed=st.integers(0, 2**32))
# Both learners complete, then a correction of a report sends an enrolment back in
# progress, which must clear its certification time (see _certified_earlier).
@example(
    scenario=[
        Submission("theory", 1, ((90.0, True),)),
        Submission("hazard", 2, ((90.0, True),)),
        Submission("report", 3, ((None, True), (None, False))),
    ],
    prerequisites=False,
    seed=0,  # delivers the second learner's correction after the completion
)
def test_batches_leave_the_same_tables_as_one_message_at_a_time(
    services: Services,
    template_database: str,
    scenario: list[Submission],
    prerequisites: bool,
    seed: int,
) -> None:
    asyncio.run(_run(services, template_database, scenario, prerequisites, seed))


class Recorder:
    """A dead-letter publisher that keeps what it is given."""

    def __init__(self) -> None:
        self.letters: list[tuple[int, str]] = []

    async def publish(self, delivery: Delivery, error_class: str, message: str) -> None:
        self.letters.append((delivery.offset, error_class))


async def test_a_bad_message_is_dead_lettered_and_its_batch_still_applies(
    pool: asyncpg.Pool,
) -> None:
    first = await publish_sample(pool, prerequisites=False)
    other = await publish_sample(pool, prerequisites=False)
    setup = consumers_for(pool, Orchestrator())
    _, user, assignments = await enrol_and_link(pool, setup, first)
    _, other_user, other_assignments = await enrol_and_link(pool, setup, other)
    orchestrator = Orchestrator()
    recorder = Recorder()
    consumer = EventConsumer(
        "orchestrator",
        "submission.created",
        pool,
        recorder,  # type: ignore[arg-type]
        orchestrator.on_submission_created,
        1 << 20,
        orchestrator.on_submissions_created,
    )
    passing = {
        key: submission_created(
            first.tenant_id,
            assignment_id=assignments[key],
            user_id=user,
            evaluation_id=first.evaluations[key],
            submitted_at=T0 + timedelta(minutes=i),
            score=95.0,
            passed=True,
        )
        for i, key in enumerate(("theory", "hazard", "report"))
    }
    foreign = submission_created(  # names the other tenant's assignment
        first.tenant_id,
        assignment_id=other_assignments["theory"],
        user_id=other_user,
        evaluation_id=first.evaluations["theory"],
        submitted_at=T0,
    )
    stranger = submission_created(  # an unknown tenant
        uuid.uuid4(),
        assignment_id=uuid.uuid4(),
        user_id=user,
        evaluation_id=first.evaluations["theory"],
        submitted_at=T0,
    )
    batch = [passing["theory"], foreign, passing["hazard"], stranger, passing["report"]]
    fallbacks = _fallbacks()

    await consumer.process_batch(_deliveries(batch))

    assert sorted(recorder.letters) == [(1, "CrossTenantReference"), (3, "UnknownTenant")]
    assert _fallbacks() == fallbacks + 2
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(first.tenant_id))
        status = await conn.fetchval("SELECT status FROM enrolments")
        met = await conn.fetchval("SELECT count(*) FROM progress WHERE status = 'met'")
    assert (status, met) == ("completed", 3)

    # Replaying the whole batch changes nothing and dead-letters the same two again.
    recorder.letters.clear()
    await consumer.process_batch(_deliveries(batch))
    assert sorted(recorder.letters) == [(1, "CrossTenantReference"), (3, "UnknownTenant")]
