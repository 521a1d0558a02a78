"""An enrolment's progress as the operator reads it: each requirement of the pinned
version with its ledger state, evidence and assignment, and why the enrolment is
not complete yet (the orchestrator's own `shortfall` rule, on the same snapshot).

`enrolment_progress` reads inside a tenant unit of work; `build_report` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from services.definitions.errors import NotFound
from services.orchestrator.domain import rules
from services.orchestrator.domain.model import ProgrammeSnapshot
from services.orchestrator.domain.rules import shortfall
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries

_sql = load_queries(Path(__file__).with_name("sql") / "progress.sql")
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    """The submission, at the score version, that satisfies a requirement."""

    submission_id: UUID
    score_version: int | None
    score: Decimal | None
    passed: bool | None
    submitted_at: datetime | None
    met_at: datetime | None


@dataclass(frozen=True)
class AssignmentView:
    """The assignment requested from the delivery engine for a requirement."""

    status: str  # requested (not yet created by the engine) | created
    assignment_id: UUID | None
    dispatch_attempts: int
    last_error: str | None


@dataclass(frozen=True)
class RequirementProgress:
    """One requirement of the pinned version and where the learner stands on it."""

    key: str
    name: str
    mandatory: bool
    elective_group: str | None
    min_score: Decimal | None
    prerequisites: tuple[str, ...]
    status: str  # the ledger's: pending | met | failed
    attempts: int
    waiting_for: tuple[str, ...]  # unmet prerequisites: not assigned until they are met
    evidence: Evidence | None
    assignment: AssignmentView | None


@dataclass(frozen=True)
class GroupShortfall:
    """An elective group still short of its minimum."""

    key: str
    name: str
    min_met: int
    met: int
    needed: int
    candidates: tuple[str, ...]  # members not met yet


@dataclass(frozen=True)
class WhyNotComplete:
    """What still stands between the enrolment and completion (nothing when complete)."""

    complete: bool
    missing_mandatory: tuple[str, ...]
    short_groups: tuple[GroupShortfall, ...]


@dataclass(frozen=True)
class ProgressReport:
    """`programmes progress`: the enrolment, its requirements, and why not complete."""

    enrolment_id: UUID
    user_id: UUID
    user_display_name: str | None
    programme_id: UUID
    programme_key: str
    programme_name: str
    programme_version: int
    status: str
    enrolled_at: datetime
    completed_at: datetime | None
    certified_at: datetime | None
    expires_at: datetime | None
    met: int
    required: int
    requirements: tuple[RequirementProgress, ...]
    why: WhyNotComplete


async def enrolment_progress(conn: Connection, enrolment_id: UUID) -> ProgressReport:
    """Read the enrolment, its ledger rows and its assignments."""
    enrolment = await _sql.enrolment(conn, id=enrolment_id)
    if enrolment is None:
        raise NotFound(f"enrolment {enrolment_id} not found")
    progress = await fetch_all(_sql.progress(conn, enrolment_id=enrolment_id))
    assignments = await fetch_all(_sql.assignments(conn, enrolment_id=enrolment_id))
    return build_report(enrolment, progress, assignments)


def build_report(
    enrolment: Row, progress: Sequence[Row], assignments: Sequence[Row]
) -> ProgressReport:
    """The report from the rows read (pure)."""
    snapshot = ProgrammeSnapshot.from_json(enrolment["snapshot"])
    rows = {r["requirement_id"]: r for r in progress}
    links = {a["requirement_id"]: a for a in assignments}
    met = {rid for rid, row in rows.items() if row["status"] == "met"}
    done, required = rules.completion_progress(snapshot, met)
    return ProgressReport(
        enrolment_id=enrolment["id"],
        user_id=enrolment["user_id"],
        user_display_name=enrolment["user_display_name"],
        programme_id=enrolment["programme_id"],
        programme_key=enrolment["programme_key"],
        programme_name=enrolment["programme_name"],
        programme_version=enrolment["programme_version"],
        status=enrolment["status"],
        enrolled_at=enrolment["enrolled_at"],
        completed_at=enrolment["completed_at"],
        certified_at=enrolment["certified_at"],
        expires_at=enrolment["expires_at"],
        met=done,
        required=required,
        requirements=tuple(
            _requirement(spec, snapshot, rows.get(rid), links.get(rid), met)
            for spec, rid in _with_ids(enrolment["snapshot"]["requirements"])
        ),
        why=why_not_complete(enrolment["snapshot"], snapshot, met),
    )


def _with_ids(specs: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], UUID]]:
    return [(spec, UUID(spec["id"])) for spec in specs]


def why_not_complete(
    document: Mapping[str, Any], snapshot: ProgrammeSnapshot, met: set[UUID]
) -> WhyNotComplete:
    """Name what is missing, with the orchestrator's own rule."""
    missing = shortfall(snapshot, met)
    names = {g["key"]: g["name"] for g in document.get("elective_groups", ())}
    minimum = {g.key: g.min_met for g in snapshot.elective_groups}
    short = tuple(
        GroupShortfall(
            key=key,
            name=names.get(key, key),
            min_met=minimum[key],
            met=minimum[key] - needed,
            needed=needed,
            candidates=tuple(
                r.key for r in snapshot.requirements if r.elective_group == key and r.id not in met
            ),
        )
        for key, needed in missing.short_groups
    )
    complete = not missing.missing_mandatory and not short
    return WhyNotComplete(complete, missing.missing_mandatory, short)


def _requirement(
    spec: Mapping[str, Any],
    snapshot: ProgrammeSnapshot,
    row: Row | None,
    link: Row | None,
    met: set[UUID],
) -> RequirementProgress:
    requirement = snapshot.requirement(UUID(spec["id"]))
    unmet = requirement.prerequisites - met
    return RequirementProgress(
        key=requirement.key,
        name=spec["name"],
        mandatory=requirement.mandatory,
        elective_group=requirement.elective_group,
        min_score=requirement.min_score,
        prerequisites=tuple(spec.get("prerequisites", ())),
        status="pending" if row is None else row["status"],
        attempts=0 if row is None else row["attempt_count"],
        waiting_for=tuple(r.key for r in snapshot.requirements if r.id in unmet),
        evidence=_evidence(row),
        assignment=_assignment(link),
    )


def _evidence(row: Row | None) -> Evidence | None:
    if row is None or row["status"] != "met" or row["submission_id"] is None:
        return None
    return Evidence(
        submission_id=row["submission_id"],
        score_version=row["score_version"],
        score=row["score"],
        passed=row["passed"],
        submitted_at=row["submitted_at"],
        met_at=row["completed_at"],
    )


def _assignment(link: Row | None) -> AssignmentView | None:
    if link is None:
        return None
    return AssignmentView(
        status=link["status"],
        assignment_id=link["assignment_id"],
        dispatch_attempts=link["attempts"],
        last_error=link["last_error"],
    )
