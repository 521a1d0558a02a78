"""The records the orchestrator's handlers and storage adapters exchange."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class ProgressRow:
    """A stored ledger row: its state and the sequence of its last decision."""

    requirement_id: UUID
    state: RequirementState
    decision_seq: int


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
