"""The orchestrator's pure rules, as examples and as properties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orchestrator.domain import rules
from services.orchestrator.domain.model import (
    Attempt,
    ElectiveGroup,
    ProgrammeSnapshot,
    Requirement,
    RequirementState,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCORED = Requirement(
    id=uuid.uuid4(), key="theory", evaluation_id=uuid.uuid4(), min_score=Decimal(80)
)
PASS_FAIL = Requirement(id=uuid.uuid4(), key="report", evaluation_id=uuid.uuid4(), min_score=None)


def attempt(
    minute: int, score: float | None = None, passed: bool | None = None, version: int = 1
) -> Attempt:
    at = T0 + timedelta(minutes=minute)
    return Attempt(
        submission_id=uuid.UUID(int=minute + 1),
        score_version=version,
        score=None if score is None else Decimal(str(score)),
        passed=passed,
        submitted_at=at,
        effective_at=at + timedelta(seconds=version - 1),
    )


@pytest.mark.parametrize(
    ("requirement", "candidate", "expected"),
    [
        (SCORED, attempt(0, score=80), True),
        (SCORED, attempt(0, score=79.99), False),
        (SCORED, attempt(0, score=None, passed=True), False),
        (PASS_FAIL, attempt(0, passed=True), True),
        (PASS_FAIL, attempt(0, passed=False, score=100), False),
        (PASS_FAIL, attempt(0, passed=None), False),
    ],
)
def test_satisfies(requirement: Requirement, candidate: Attempt, expected: bool) -> None:
    assert rules.satisfies(requirement, candidate) is expected


def test_the_first_passing_attempt_is_the_evidence() -> None:
    state = rules.evaluate_requirement(
        SCORED, [attempt(3, score=95), attempt(1, score=50), attempt(2, score=85)]
    )
    assert state.status == "met"
    assert state.submission_id == uuid.UUID(int=3)  # minute 2: the first that passed
    assert state.attempt_count == 3
    assert state.met_at == T0 + timedelta(minutes=2)


def test_a_lowered_evidence_falls_back_then_returns_to_pending() -> None:
    first, second = attempt(1, score=90), attempt(2, score=85)
    lowered_first = attempt(1, score=10, version=2)
    state = rules.evaluate_requirement(SCORED, [lowered_first, second])
    assert state.status == "met" and state.submission_id == second.submission_id
    state = rules.evaluate_requirement(SCORED, [lowered_first, attempt(2, score=5, version=2)])
    assert state == RequirementState(status="pending", attempt_count=2)
    assert rules.evaluate_requirement(SCORED, [first]).status == "met"


scores = st.none() | st.integers(min_value=0, max_value=100).map(float)
attempts = st.lists(
    st.builds(
        attempt, st.integers(0, 10_000), scores, st.none() | st.booleans(), st.integers(1, 5)
    ),
    max_size=8,
    unique_by=lambda a: a.submission_id,
)


@given(attempts, st.randoms())
def test_the_requirement_state_ignores_arrival_order(found: list[Attempt], rng: object) -> None:
    shuffled = list(found)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    for requirement in (SCORED, PASS_FAIL):
        assert rules.evaluate_requirement(requirement, found) == rules.evaluate_requirement(
            requirement, shuffled
        )


@given(attempts, st.builds(attempt, st.integers(10_001, 20_000), scores, st.none() | st.booleans()))
def test_a_later_attempt_never_downgrades_a_met_requirement(
    found: list[Attempt], later: Attempt
) -> None:
    for requirement in (SCORED, PASS_FAIL):
        before = rules.evaluate_requirement(requirement, found)
        after = rules.evaluate_requirement(requirement, [*found, later])
        if before.status == "met":
            assert after.status == "met"
            assert after.submission_id == before.submission_id
        assert after.attempt_count == before.attempt_count + 1


@st.composite
def snapshots(draw: st.DrawFn) -> ProgrammeSnapshot:
    count = draw(st.integers(1, 7))
    ids = [uuid.UUID(int=i + 1) for i in range(count)]
    groups = draw(st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=2))
    requirements = []
    for index, rid in enumerate(ids):
        group = draw(st.none() | st.sampled_from(groups)) if groups else None
        requirements.append(
            Requirement(
                id=rid,
                key=f"r{index}",
                evaluation_id=uuid.uuid4(),
                min_score=Decimal(50),
                mandatory=group is None and draw(st.booleans()),
                elective_group=group,
                prerequisites=frozenset(draw(st.sets(st.sampled_from(ids[:index]))))
                if index
                else frozenset(),
            )
        )
    elective = []
    for key in groups:
        members = sum(1 for r in requirements if r.elective_group == key)
        if members:
            elective.append(ElectiveGroup(key=key, min_met=draw(st.integers(1, members))))
    if not elective and not any(r.mandatory for r in requirements):
        # Programme files with nothing required are rejected (services/definitions/model.py).
        first = requirements[0]
        requirements[0] = Requirement(first.id, first.key, first.evaluation_id, first.min_score)
    return ProgrammeSnapshot(uuid.uuid4(), 1, tuple(requirements), tuple(elective))


@st.composite
def snapshot_and_met(draw: st.DrawFn) -> tuple[ProgrammeSnapshot, dict[uuid.UUID, datetime]]:
    snapshot = draw(snapshots())
    met = draw(st.sets(st.sampled_from([r.id for r in snapshot.requirements])))
    return snapshot, {rid: T0 + timedelta(minutes=draw(st.integers(0, 1000))) for rid in met}


@given(snapshot_and_met())
def test_complete_exactly_when_nothing_is_missing(
    case: tuple[ProgrammeSnapshot, dict[uuid.UUID, datetime]],
) -> None:
    snapshot, met_at = case
    short = rules.shortfall(snapshot, met_at)
    assert rules.is_complete(snapshot, met_at) == (
        not short.missing_mandatory and not short.short_groups
    )


@given(snapshot_and_met(), st.data())
def test_meeting_more_never_uncompletes(
    case: tuple[ProgrammeSnapshot, dict[uuid.UUID, datetime]], data: st.DataObject
) -> None:
    snapshot, met_at = case
    extra = data.draw(st.sampled_from([r.id for r in snapshot.requirements]))
    more = {extra: T0, **met_at}
    if rules.is_complete(snapshot, met_at):
        assert rules.is_complete(snapshot, more)
        assert rules.completion_time(snapshot, more) <= rules.completion_time(snapshot, met_at)


@given(snapshot_and_met())
def test_unlocked_means_every_prerequisite_met(
    case: tuple[ProgrammeSnapshot, dict[uuid.UUID, datetime]],
) -> None:
    snapshot, met_at = case
    open_ = {r.id for r in rules.unlocked(snapshot, met_at)}
    for requirement in snapshot.requirements:
        assert (requirement.id in open_) == (requirement.prerequisites <= set(met_at))


def test_n_of_m_electives() -> None:
    core = Requirement(uuid.UUID(int=1), "core", uuid.uuid4(), Decimal(50))
    options = [
        Requirement(uuid.UUID(int=i), f"e{i}", uuid.uuid4(), Decimal(50), False, "pick")
        for i in (2, 3, 4)
    ]
    snapshot = ProgrammeSnapshot(uuid.uuid4(), 1, (core, *options), (ElectiveGroup("pick", 2),))
    at = {core.id: T0, options[0].id: T0 + timedelta(hours=1)}
    assert rules.shortfall(snapshot, at) == rules.Shortfall((), (("pick", 1),))
    at[options[2].id] = T0 + timedelta(hours=3)
    at[options[1].id] = T0 + timedelta(hours=2)
    assert rules.is_complete(snapshot, at)
    # completion rests on the two earliest electives: at 2h, not 3h
    assert rules.completion_time(snapshot, at) == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("status", "complete", "decision"),
    [
        ("in_progress", True, "complete"),
        ("in_progress", False, None),
        ("completed", False, "reopen"),
        ("certified", False, "reopen"),
        ("certified", True, None),
        ("expired", False, None),
        ("cancelled", True, None),
    ],
)
def test_enrolment_decision(status: str, complete: bool, decision: str | None) -> None:
    assert rules.enrolment_decision(status, complete) == decision


def test_transition_reasons() -> None:
    pending = RequirementState("pending", 0)
    met = rules.evaluate_requirement(SCORED, [attempt(1, score=90)])
    other = rules.evaluate_requirement(SCORED, [attempt(0, score=99), attempt(1, score=90)])
    assert rules.transition_reason(pending, pending) is None
    assert rules.transition_reason(pending, met) == "met"
    assert rules.transition_reason(met, RequirementState("pending", 1)) == "taken_back"
    assert rules.transition_reason(met, other) == "evidence_changed"
    assert rules.transition_reason(pending, RequirementState("pending", 1)) == "attempt_recorded"
