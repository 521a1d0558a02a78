"""What the ledger must end as, computed by the pure rules from the planned events
alone, in the same canonical form tests/support/ledger_state.py reads from the
database: compare the two (or their hashes) after any fault."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from services.orchestrator.domain import rules
from services.orchestrator.domain.model import RequirementState
from tests.support.workload import PlannedEnrolment, Workload

Canonical = dict[str, Any]


@dataclass(frozen=True)
class Expected:
    """One enrolment's expected end state."""

    enrolment: PlannedEnrolment
    requirements: dict[uuid.UUID, RequirementState]
    assigned: frozenset[uuid.UUID]  # requirements the delivery engine was asked for
    completed_at: datetime | None  # None: not complete

    @property
    def complete(self) -> bool:
        return self.completed_at is not None

    @property
    def monotone(self) -> bool:
        """No result of the plan ever goes from passing to failing: the enrolment
        then completes at most once, whatever the arrival order."""
        snapshot = self.enrolment.programme.snapshot
        for requirement_id, submissions in self.enrolment.submissions.items():
            requirement = snapshot.requirement(requirement_id)
            for planned in submissions:
                passing = [
                    rules.satisfies(
                        requirement,
                        replace(planned.attempt(), score=_score(v.score), passed=v.passed),
                    )
                    for v in planned.versions
                ]
                if any(a and not b for a, b in pairwise(passing)):
                    return False
        return True


def _score(score: float | None) -> Decimal | None:
    return None if score is None else Decimal(str(score))


def expect(workload: Workload) -> dict[uuid.UUID, Expected]:
    """The expected end state of every enrolment of the workload."""
    return {e.enrolment_id: _expect(e) for e in workload.enrolments}


def _expect(enrolment: PlannedEnrolment) -> Expected:
    snapshot = enrolment.programme.snapshot
    states = {
        r.id: rules.evaluate_requirement(
            r, (s.attempt() for s in enrolment.submissions.get(r.id, ()))
        )
        for r in snapshot.requirements
    }
    met_at = {rid: s.met_at for rid, s in states.items() if s.met_at is not None}
    assigned = frozenset(r.id for r in snapshot.requirements if r.prerequisites <= set(met_at))
    complete = rules.is_complete(snapshot, met_at)
    return Expected(
        enrolment,
        states,
        assigned,
        rules.completion_time(snapshot, met_at) if complete else None,
    )


def canonical(expected: dict[uuid.UUID, Expected]) -> Canonical:
    """The order-independent end state, as ledger_state.canonical_state reads it."""
    return {
        str(enrolment_id): {
            "status": "certified" if e.complete else "in_progress",
            "completed_at": stamp(e.completed_at),
            "requirements": {
                str(rid): requirement_row(
                    s.status,
                    s.attempt_count,
                    s.submission_id,
                    s.score_version,
                    s.score,
                    s.passed,
                    s.met_at,
                )
                for rid, s in e.requirements.items()
            },
            "assigned": sorted(str(r) for r in e.assigned),
            "live_certificates": 1 if e.complete else 0,
        }
        for enrolment_id, e in expected.items()
    }


def requirement_row(
    status: str,
    attempt_count: int,
    submission_id: uuid.UUID | None,
    score_version: int | None,
    score: Decimal | None,
    passed: bool | None,
    met_at: datetime | None,
) -> list[Any]:
    """One progress row in canonical form."""
    return [
        status,
        attempt_count,
        str(submission_id),
        score_version,
        None if score is None else f"{score:.3f}",
        passed,
        stamp(met_at),
    ]


def stamp(moment: datetime | None) -> str | None:
    """A timestamp in canonical form (UTC, ISO 8601)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def digest(value: Any) -> str:
    """A short, stable hash of a canonical value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(expected: Canonical, actual: Canonical, limit: int = 5) -> list[str]:
    """Where `actual` departs from `expected` (at most `limit` lines)."""
    found = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key), actual.get(key)
        if want != got:
            found.append(f"{key}: expected {want!r}, got {got!r}")
            if len(found) >= limit:
                break
    return found
