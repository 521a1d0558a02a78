"""The event contract of ../shared/CONTRACT.md: CloudEvents envelope and payloads."""

from shared.events.contract import (
    CONSUMED_TYPES,
    EVENT_MODELS,
    CertificateExpired,
    CertificateIssued,
    CertificateRevoked,
    EnrolmentCompleted,
    EnrolmentCreated,
    EnrolmentReopened,
    EvidenceItem,
    ScoreRemediated,
    SubmissionCreated,
)
from shared.events.envelope import (
    CloudEvent,
    EventDecodeError,
    decode_event,
    envelope_for,
    new_event,
)

__all__ = [
    "CONSUMED_TYPES",
    "EVENT_MODELS",
    "CertificateExpired",
    "CertificateIssued",
    "CertificateRevoked",
    "CloudEvent",
    "EnrolmentCompleted",
    "EnrolmentCreated",
    "EnrolmentReopened",
    "EventDecodeError",
    "EvidenceItem",
    "ScoreRemediated",
    "SubmissionCreated",
    "decode_event",
    "envelope_for",
    "new_event",
]
