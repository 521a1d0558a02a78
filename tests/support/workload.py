"""A seeded workload for fault tests: several tenants, each with a programme of its
own shape (prerequisites, a pass/fail requirement, an optional one, an elective
group), and learners whose planned attempts pass, fail and are corrected in both
directions.

The plan is pure data, fixed by the seed before anything runs; the platform
events are made from it once the delivery engine has created the assignment they
answer (see tests/support/feeder.py). One rule keeps the final ledger a function
of the plan alone: a requirement that is another's prerequisite and ends unmet
never had a passing result, so whether its dependants were ever assigned cannot
depend on arrival order (ADR 0007: an assignment, once sent, is not withdrawn).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.definitions import service as definitions
from services.definitions.model import parse_programme
from services.orchestrator.domain import rules
from services.orchestrator.domain.model import Attempt, ProgrammeSnapshot, Requirement
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from tests.support.events import enrolment_created, score_remediated, submission_created

T0 = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
PUBLISHED_AT = datetime(2020, 1, 1, tzinfo=UTC)
KINDS = {"theory": "knowledge", "hazard": "observation", "report": "evidence"}


def _requirement(key: str, min_score: int | None, **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "min_score": min_score, **extra}


# Programme shapes, one per tenant in turn (evaluation ids are filled in per tenant).
SHAPES: dict[str, dict[str, Any]] = {
    "prerequisite": {
        "requirements": [
            _requirement("theory", 80),
            _requirement("hazard", 70, prerequisites=["theory"]),
            _requirement("report", None),
        ],
    },
    "elective": {
        "requirements": [
            _requirement("theory", 60),
            _requirement("hazard", 70, mandatory=False, elective_group="practice"),
            _requirement(
                "report", None, mandatory=False, elective_group="practice", prerequisites=["theory"]
            ),
        ],
        "elective_groups": [{"key": "practice", "name": "Practice", "min_met": 1}],
    },
    "optional": {
        "requirements": [
            _requirement("theory", 50),
            _requirement("hazard", 90),
            _requirement("report", None, mandatory=False),
        ],
    },
}


@dataclass(frozen=True)
class TenantProgramme:
    """A tenant and the programme version its learners are pinned to."""

    tenant_id: uuid.UUID
    shape: str
    snapshot: ProgrammeSnapshot

    @property
    def programme_id(self) -> uuid.UUID:
        return self.snapshot.programme_id


@dataclass(frozen=True)
class Version:
    """One score version of a submission: version 1 at submission, then corrections."""

    score: float | None
    passed: bool | None
    at: datetime  # submitted_at (version 1) or remediated_at


@dataclass(frozen=True)
class PlannedSubmission:
    """An attempt at a requirement and every score version it will ever have."""

    submission_id: uuid.UUID
    versions: tuple[Version, ...]

    @property
    def submitted_at(self) -> datetime:
        return self.versions[0].at

    def attempt(self) -> Attempt:
        """The attempt as the rules see it once every version arrived."""
        last = self.versions[-1]
        return Attempt(
            submission_id=self.submission_id,
            score_version=len(self.versions),
            score=None if last.score is None else Decimal(str(last.score)),
            passed=last.passed,
            submitted_at=self.submitted_at,
            effective_at=last.at,
        )


@dataclass(frozen=True)
class PlannedEnrolment:
    """A learner's enrolment and the attempts planned for each requirement."""

    programme: TenantProgramme
    enrolment_id: uuid.UUID
    user_id: uuid.UUID
    enrolled_at: datetime
    submissions: dict[uuid.UUID, tuple[PlannedSubmission, ...]]  # by requirement id

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.programme.tenant_id

    @property
    def events(self) -> int:
        """How many platform events this enrolment takes."""
        return 1 + sum(len(s.versions) for subs in self.submissions.values() for s in subs)

    def enrolment_event(self) -> CloudEvent[Any]:
        return enrolment_created(
            self.tenant_id,
            self.programme.programme_id,
            enrolled_at=self.enrolled_at,
            enrolment_id=self.enrolment_id,
            user_id=self.user_id,
        )

    def submission_events(
        self, requirement_id: uuid.UUID, assignment_id: uuid.UUID
    ) -> list[CloudEvent[Any]]:
        """The requirement's submissions and corrections, answering `assignment_id`."""
        requirement = self.programme.snapshot.requirement(requirement_id)
        events: list[CloudEvent[Any]] = []
        for planned in self.submissions[requirement_id]:
            first = planned.versions[0]
            events.append(
                submission_created(
                    self.tenant_id,
                    assignment_id=assignment_id,
                    user_id=self.user_id,
                    evaluation_id=requirement.evaluation_id,
                    submitted_at=first.at,
                    score=first.score,
                    passed=first.passed,
                    submission_id=planned.submission_id,
                )
            )
            for number, version in enumerate(planned.versions[1:], start=2):
                events.append(
                    score_remediated(
                        self.tenant_id,
                        submission_id=planned.submission_id,
                        score_version=number,
                        remediated_at=version.at,
                        score=version.score,
                        passed=version.passed,
                    )
                )
        return events


@dataclass(frozen=True)
class Workload:
    """Everything a fault run will send, fixed by `seed`."""

    seed: int
    programmes: tuple[TenantProgramme, ...]
    enrolments: tuple[PlannedEnrolment, ...]

    @property
    def events(self) -> int:
        return sum(e.events for e in self.enrolments)

    def by_enrolment(self) -> dict[uuid.UUID, PlannedEnrolment]:
        return {e.enrolment_id: e for e in self.enrolments}


async def publish_programmes(pool: asyncpg.Pool, tenants: int, seed: int) -> list[TenantProgramme]:
    """Register `tenants` tenants with a catalogue and one programme each (shapes in turn)."""
    rng = random.Random(seed)
    shapes = list(SHAPES)
    published = []
    for index in range(tenants):
        shape = shapes[index % len(shapes)]
        tenant_id = _uuid(rng)
        evaluations = {key: _uuid(rng) for key in KINDS}
        document: dict[str, Any] = {
            "key": f"faults-{shape}",
            "name": f"Fault tolerance ({shape})",
            "validity_period": "P1Y",
            **SHAPES[shape],
        }
        document["requirements"] = [
            {**r, "evaluation_id": str(evaluations[r["key"]])} for r in document["requirements"]
        ]
        spec = parse_programme(document)
        async with TenantUnitOfWork(pool, tenant_id, actor_role="admin") as uow:
            await definitions.ensure_tenant(uow.connection)
            for key, evaluation_id in evaluations.items():
                await definitions.add_evaluation(uow.connection, evaluation_id, KINDS[key], key)
            done = await definitions.apply(uow.connection, spec, actor="faults", now=PUBLISHED_AT)
            await uow.commit()
        snapshot = definitions.snapshot(done.programme_id, done.version, spec)
        published.append(TenantProgramme(tenant_id, shape, ProgrammeSnapshot.from_json(snapshot)))
    return published


def plan_workload(programmes: list[TenantProgramme], events: int, seed: int) -> Workload:
    """Enrolments, round-robin over the programmes, until `events` events are planned."""
    rng = random.Random(seed)
    enrolments: list[PlannedEnrolment] = []
    total = 0
    while total < events:
        programme = programmes[len(enrolments) % len(programmes)]
        enrolled_at = T0 + timedelta(minutes=len(enrolments))
        enrolment = PlannedEnrolment(
            programme=programme,
            enrolment_id=_uuid(rng),
            user_id=_uuid(rng),
            enrolled_at=enrolled_at,
            submissions=_plan_attempts(rng, programme.snapshot, enrolled_at),
        )
        enrolments.append(enrolment)
        total += enrolment.events
    return Workload(seed, tuple(programmes), tuple(enrolments))


def _plan_attempts(
    rng: random.Random, snapshot: ProgrammeSnapshot, enrolled_at: datetime
) -> dict[uuid.UUID, tuple[PlannedSubmission, ...]]:
    prerequisites = {p for r in snapshot.requirements for p in r.prerequisites}
    met: set[uuid.UUID] = set()
    planned: dict[uuid.UUID, tuple[PlannedSubmission, ...]] = {}
    for requirement in _in_prerequisite_order(snapshot):
        if not requirement.prerequisites <= met:
            planned[requirement.id] = ()  # never assigned: nothing to submit
            continue
        count = rng.choice((1, 1, 1, 2, 2, 3))
        attempts = tuple(_plan_submission(rng, requirement, enrolled_at) for _ in range(count))
        state = rules.evaluate_requirement(requirement, (a.attempt() for a in attempts))
        if requirement.id in prerequisites and state.status != "met":
            attempts = tuple(_never_passing(rng, requirement, a) for a in attempts)
        if state.status == "met":
            met.add(requirement.id)
        planned[requirement.id] = attempts
    return planned


def _in_prerequisite_order(snapshot: ProgrammeSnapshot) -> Iterator[Requirement]:
    done: set[uuid.UUID] = set()
    remaining = list(snapshot.requirements)
    while remaining:
        ready = [r for r in remaining if r.prerequisites <= done]
        for requirement in ready:
            done.add(requirement.id)
            remaining.remove(requirement)
            yield requirement


def _plan_submission(
    rng: random.Random, requirement: Requirement, enrolled_at: datetime
) -> PlannedSubmission:
    submitted_at = enrolled_at + timedelta(hours=rng.randint(1, 240))
    passing = rng.random() < 0.6
    versions = [Version(*_result(rng, requirement, passing), at=submitted_at)]
    if rng.random() < 0.3:  # a correction batch, sometimes two
        for _ in range(rng.choice((1, 1, 2))):
            if rng.random() < 0.7:
                passing = not passing  # both directions
            at = versions[-1].at + timedelta(days=rng.randint(1, 30))
            versions.append(Version(*_result(rng, requirement, passing), at=at))
    return PlannedSubmission(_uuid(rng), tuple(versions))


def _never_passing(
    rng: random.Random, requirement: Requirement, planned: PlannedSubmission
) -> PlannedSubmission:
    versions = tuple(
        Version(*_result(rng, requirement, passing=False), at=v.at) for v in planned.versions
    )
    return PlannedSubmission(planned.submission_id, versions)


def _result(
    rng: random.Random, requirement: Requirement, passing: bool
) -> tuple[float | None, bool | None]:
    """(score, passed) as the delivery engine reports it: a score, or pass/fail."""
    if requirement.min_score is None:
        return None, passing
    threshold = int(requirement.min_score)
    return float(rng.randint(threshold, 100) if passing else rng.randint(0, threshold - 1)), None


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)
