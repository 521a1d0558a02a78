"""The records the orchestrator's handlers and storage adapters exchange."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.orchestrator.domain.model import ProgrammeSnapshot, RequirementState


@dataclass(frozen=True)
class PinnedVersion:
    """A programme's status and the version an enrolment at a given instant pins."""

    programme_status: str
    version: int | None
    definition: dict[str, Any] | None


@dataclass(frozen=True)
class Enrolment:
    """An enrolment, locked for the rest of the transaction."""

    id: UUID
    user_id: UUID
    org_unit_id: UUID | None
    programme_id: UUID
    programme_version: int
    status: str
    snapshot: ProgrammeSnapshot
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], snapshot: ProgrammeSnapshot) -> Enrolment:
        """An `enrolments` row (and the snapshot it is pinned to)."""
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            org_unit_id=row["org_unit_id"],
            programme_id=row["programme_id"],
            programme_version=row["programme_version"],
            status=row["status"],
            snapshot=snapshot,
            completed_at=row["completed_at"],
        )


@dataclass(frozen=True)
class ProgressRow:
    """A stored ledger row: its state and the sequence of its last decision."""

    requirement_id: UUID
    state: RequirementState
    decision_seq: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProgressRow:
        """A `progress` row (its `completed_at` read as `met_at`)."""
        score = row["score"]
        return cls(
            requirement_id=row["requirement_id"],
            state=RequirementState(
                status=row["status"],
                attempt_count=row["attempt_count"],
                submission_id=row["submission_id"],
                score_version=row["score_version"],
                score=None if score is None else Decimal(score),
                passed=row["passed"],
                met_at=row["met_at"],
            ),
            decision_seq=row["decision_seq"],
        )


@dataclass(frozen=True)
class Link:
    """Which enrolment and requirement an assignment was requested for."""

    enrolment_id: UUID
    requirement_id: UUID
    user_id: UUID


@dataclass(frozen=True)
class Cause:
    """The event a decision is recorded against."""

    event_id: UUID
    event_type: str
    time: datetime
    traceparent: str | None = None  # W3C trace context, carried onto produced events


@dataclass(frozen=True)
class AssignmentRequest:
    """A recorded, not yet created, assignment request."""

    idempotency_key: str
    evaluation_id: UUID
    org_unit_id: UUID | None
    attempts: int
