"""Payloads (`data`) of every event of the contract, version 1.

Consumed payloads are validated strictly (no type coercion, no NaN or infinity,
bounded strings) and ignore unknown fields, so that producers may add fields
without breaking this fleet. Produced payloads are exactly what we send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Score = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
DisplayName = Annotated[str, Field(min_length=1, max_length=200)]


class _Consumed(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", allow_inf_nan=False)


class _Produced(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class EnrolmentCreated(_Consumed):
    """A learner is enrolled on a programme."""

    enrolment_id: UUID
    user_id: UUID
    program_id: UUID
    enrolled_at: AwareDatetime
    user_display_name: DisplayName | None = None
    renewal_of_enrolment_id: UUID | None = None


class SubmissionCreated(_Consumed):
    """A learner's attempt was scored by the delivery engine."""

    submission_id: UUID
    assignment_id: UUID
    user_id: UUID
    evaluation_id: UUID
    score: Score | None
    passed: bool | None
    score_version: Annotated[int, Field(ge=1, le=1_000_000)]
    submitted_at: AwareDatetime


class ScoreRemediated(_Consumed):
    """A Correction Batch changed a submission's result."""

    submission_id: UUID
    score_version: Annotated[int, Field(ge=2, le=1_000_000)]
    score: Score | None
    passed: bool | None
    correction_batch_id: UUID
    remediated_at: AwareDatetime


class EvidenceItem(_Produced):
    """The submission and score version that satisfied one requirement."""

    requirement_id: UUID
    submission_id: UUID
    score_version: int
    score: float | None
    passed: bool | None


class EnrolmentCompleted(_Produced):
    """Every mandatory requirement of an enrolment is met."""

    enrolment_id: UUID
    user_id: UUID
    program_id: UUID
    program_version: int
    completed_at: datetime
    evidence: list[EvidenceItem]


class EnrolmentReopened(_Produced):
    """A remediation took back a requirement of a completed or certified enrolment."""

    enrolment_id: UUID
    requirement_id: UUID
    submission_id: UUID
    score_version: int
    reason: str


CertificateStatus = Literal["active", "expired", "revoked"]


class _Certificate(_Produced):
    certificate_id: UUID
    enrolment_id: UUID
    user_id: UUID
    program_id: UUID
    issued_at: datetime
    expires_at: datetime | None
    status: CertificateStatus
    verification_url: str


class CertificateIssued(_Certificate):
    """A certificate was issued for a completed enrolment."""


class CertificateRevoked(_Certificate):
    """A certificate was revoked (a remediation took a requirement back)."""

    reason: str


class CertificateExpired(_Certificate):
    """A certificate passed its expiry."""


EVENT_MODELS: dict[str, type[BaseModel]] = {
    "enrolment.created": EnrolmentCreated,
    "submission.created": SubmissionCreated,
    "score.remediated": ScoreRemediated,
    "enrolment.completed": EnrolmentCompleted,
    "enrolment.reopened": EnrolmentReopened,
    "certificate.issued": CertificateIssued,
    "certificate.revoked": CertificateRevoked,
    "certificate.expired": CertificateExpired,
}

CONSUMED_TYPES = frozenset({"enrolment.created", "submission.created", "score.remediated"})
