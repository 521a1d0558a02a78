"""The rules of the mission, as pure functions.

Every state here is a function of the facts (the attempts and their latest
score versions), never of the order the facts arrived in: that is what makes
the ledger replayable and order-independent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from services.orchestrator.domain.model import (
    Attempt,
    ProgrammeSnapshot,
    Requirement,
    RequirementState,
)


def satisfies(requirement: Requirement, attempt: Attempt) -> bool:
    """Does this attempt meet the requirement? score >= min_score, or passed for pass/fail."""
    if requirement.min_score is None:
        return attempt.passed is True
    return attempt.score is not None and attempt.score >= requirement.min_score


def _first(attempt: Attempt) -> tuple[datetime, str]:
    return (attempt.submitted_at, str(attempt.submission_id))


def evaluate_requirement(requirement: Requirement, attempts: Iterable[Attempt]) -> RequirementState:
    """The requirement's state given every attempt at it.

    The evidence is the first passing attempt (earliest submitted; submission id
    breaks ties): later attempts never downgrade a met requirement, a remediation
    that breaks the evidence falls back to the next passing attempt, and with
    none left the requirement is pending again. The requirement has been met
    since the earliest passing result among its attempts, whichever of them is
    the evidence: a correction that makes an earlier attempt the evidence does not
    make the requirement met later.
    """
    attempts = list(attempts)
    passing = [a for a in attempts if satisfies(requirement, a)]
    if not passing:
        return RequirementState(status="pending", attempt_count=len(attempts))
    since = min(a.effective_at for a in passing)
    return RequirementState.met_by(min(passing, key=_first), len(attempts), since)


def _group_members(snapshot: ProgrammeSnapshot, group: str) -> list[Requirement]:
    return [r for r in snapshot.requirements if r.elective_group == group]


def counted_times(
    snapshot: ProgrammeSnapshot, met_at: Mapping[UUID, datetime]
) -> list[datetime] | None:
    """When each requirement that completion rests on was met, or None if incomplete.

    Completion rests on every mandatory requirement and, for each elective group,
    its `min_met` earliest met members.
    """
    times: list[datetime] = []
    for requirement in snapshot.requirements:
        if requirement.mandatory:
            if requirement.id not in met_at:
                return None
            times.append(met_at[requirement.id])
    for group in snapshot.elective_groups:
        members = sorted(
            met_at[r.id] for r in _group_members(snapshot, group.key) if r.id in met_at
        )
        if len(members) < group.min_met:
            return None
        times.extend(members[: group.min_met])
    return times


def is_complete(snapshot: ProgrammeSnapshot, met_at: Mapping[UUID, datetime]) -> bool:
    """Every mandatory requirement met, and every elective group's minimum."""
    return counted_times(snapshot, met_at) is not None


def completion_time(snapshot: ProgrammeSnapshot, met_at: Mapping[UUID, datetime]) -> datetime:
    """When the enrolment became complete: the latest of the times completion rests on."""
    times = counted_times(snapshot, met_at)
    if times is None:
        raise ValueError("the enrolment is not complete")
    if not times:
        raise ValueError("a programme with nothing required never completes by itself")
    return max(times)


@dataclass(frozen=True)
class Shortfall:
    """What still stands between an enrolment and completion."""

    missing_mandatory: tuple[str, ...]  # requirement keys
    short_groups: tuple[tuple[str, int], ...]  # (group key, how many more)


def shortfall(snapshot: ProgrammeSnapshot, met: Iterable[UUID]) -> Shortfall:
    """Name what is missing ("why not complete?")."""
    met = set(met)
    missing = tuple(r.key for r in snapshot.requirements if r.mandatory and r.id not in met)
    short = []
    for group in snapshot.elective_groups:
        have = sum(1 for r in _group_members(snapshot, group.key) if r.id in met)
        if have < group.min_met:
            short.append((group.key, group.min_met - have))
    return Shortfall(missing, tuple(short))


def completion_progress(snapshot: ProgrammeSnapshot, met: Iterable[UUID]) -> tuple[int, int]:
    """(met, required) towards completion, for progress bars: every mandatory
    requirement counts once, each elective group up to its minimum."""
    met = set(met)
    mandatory = [r for r in snapshot.requirements if r.mandatory]
    required = len(mandatory) + sum(g.min_met for g in snapshot.elective_groups)
    done = sum(1 for r in mandatory if r.id in met)
    for group in snapshot.elective_groups:
        members = _group_members(snapshot, group.key)
        done += min(sum(1 for r in members if r.id in met), group.min_met)
    return done, required


def unlocked(snapshot: ProgrammeSnapshot, met: Iterable[UUID]) -> list[Requirement]:
    """Requirements whose prerequisites are all met (to be assigned), in snapshot order."""
    met = set(met)
    return [r for r in snapshot.requirements if r.prerequisites <= met]


EnrolmentDecision = Literal["complete", "reopen"] | None


def enrolment_decision(status: str, complete: bool) -> EnrolmentDecision:
    """Whether the enrolment completes now, is reopened, or stays as it is.

    Expired and cancelled enrolments are final: nothing reopens or completes them.
    """
    if status == "in_progress" and complete:
        return "complete"
    if status in ("completed", "certified") and not complete:
        return "reopen"
    return None


def transition_reason(before: RequirementState, after: RequirementState) -> str | None:
    """Why the ledger row changes (its history entry's reason), or None if it does not."""
    if before == after:
        return None
    if before.status == "pending" and after.status == "met":
        return "met"
    if before.status == "met" and after.status == "pending":
        return "taken_back"
    if before.status == "met":
        return "evidence_changed"
    return "attempt_recorded"
