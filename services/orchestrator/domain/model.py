"""What the rules reason about: a pinned programme snapshot and attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from uuid import UUID

RequirementStatus = Literal["pending", "met"]

_SCORE_PLACES = Decimal("0.001")


def stored_score(score: float | None) -> Decimal | None:
    """A reported score as the ledger keeps it (numeric(6, 3)): the exact value of
    the float, rounded half away from zero to three places, as PostgreSQL would."""
    if score is None:
        return None
    return Decimal(score).quantize(_SCORE_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Requirement:
    """One requirement of a pinned programme version."""

    id: UUID
    key: str
    evaluation_id: UUID
    min_score: Decimal | None  # None: pass/fail, satisfied by `passed`
    mandatory: bool = True
    elective_group: str | None = None
    prerequisites: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class ElectiveGroup:
    """ "At least `min_met` of these": the requirements naming this group."""

    key: str
    min_met: int


@dataclass(frozen=True)
class ProgrammeSnapshot:
    """The requirements and rules an enrolment is pinned to."""

    programme_id: UUID
    version: int
    requirements: tuple[Requirement, ...]
    elective_groups: tuple[ElectiveGroup, ...] = ()
    _by_id: dict[UUID, Requirement] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {r.id: r for r in self.requirements})

    def requirement(self, requirement_id: UUID) -> Requirement:
        """The requirement with this id (KeyError when it is not in the snapshot)."""
        return self._by_id[requirement_id]

    @classmethod
    def from_json(cls, snapshot: dict[str, Any]) -> ProgrammeSnapshot:
        """Read the snapshot stored on an enrolment (see the definitions service)."""
        by_key = {r["key"]: UUID(r["id"]) for r in snapshot["requirements"]}
        requirements = tuple(
            Requirement(
                id=UUID(r["id"]),
                key=r["key"],
                evaluation_id=UUID(r["evaluation_id"]),
                min_score=None if r["min_score"] is None else Decimal(str(r["min_score"])),
                mandatory=r["mandatory"],
                elective_group=r.get("elective_group"),
                prerequisites=frozenset(by_key[k] for k in r.get("prerequisites", ())),
            )
            for r in snapshot["requirements"]
        )
        groups = tuple(
            ElectiveGroup(key=g["key"], min_met=g["min_met"])
            for g in snapshot.get("elective_groups", ())
        )
        return cls(
            programme_id=UUID(snapshot["programme_id"]),
            version=snapshot["version"],
            requirements=requirements,
            elective_groups=groups,
        )


@dataclass(frozen=True)
class Attempt:
    """A submission for a requirement, at the highest score version known."""

    submission_id: UUID
    score_version: int
    score: Decimal | None
    passed: bool | None
    submitted_at: datetime
    effective_at: datetime  # when this score version came to be (submission or correction)


@dataclass(frozen=True)
class RequirementState:
    """The ledger's state of one requirement (one progress row), derived from its
    attempts alone. When met, the evidence: which submission, at which score
    version, with what result, effective when."""

    status: RequirementStatus
    attempt_count: int
    submission_id: UUID | None = None
    score_version: int | None = None
    score: Decimal | None = None
    passed: bool | None = None
    met_at: datetime | None = None

    @classmethod
    def met_by(cls, evidence: Attempt, attempt_count: int, met_at: datetime) -> RequirementState:
        """Met since `met_at`, resting on `evidence`."""
        return cls(
            status="met",
            attempt_count=attempt_count,
            submission_id=evidence.submission_id,
            score_version=evidence.score_version,
            score=evidence.score,
            passed=evidence.passed,
            met_at=met_at,
        )
