"""What a group of certifier events decides, worked out in memory before any write.

One tenant's `enrolment.completed` / `enrolment.reopened` events are decided
in order against the state loaded once for the whole group (the enrolments,
the certificates already issued for these completions, the live certificates),
with the same pure rules as the per-message handlers (`domain.issue_time`,
`domain.reopen_applies`), each decision updating that state for the next
event. The result is a `GroupPlan`: the writes to make, one set-based
statement per kind. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.certifier.adapters.certificates import (
    Certificate,
    Certification,
    CompletedEnrolment,
    NewCertificate,
)
from services.certifier.domain import issue_time, reopen_applies
from shared.errors import ReferenceNotFound
from shared.events import CloudEvent, EnrolmentCompleted, EnrolmentReopened
from shared.ids import derived_id

SUPERSEDED = "superseded by a new completion"


class NotPlannable(RuntimeError):
    """The group asks for something the set-based path does not do (revoking a
    certificate issued earlier in the same group): redo it one event at a time."""


@dataclass(frozen=True)
class Revocation:
    """A live certificate (issued before this group) to revoke."""

    certificate: Certificate
    reason: str
    at: datetime


@dataclass(frozen=True)
class Emission:
    """An event for the outbox, in the order the per-message path writes them."""

    event_type: str  # certificate.issued | certificate.revoked
    certificate_id: UUID
    enrolment: CompletedEnrolment
    cause: CloudEvent[Any]
    reason: str | None = None


@dataclass
class GroupPlan:
    """Every decision of one group, and the writes they need."""

    outcomes: list[str] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    issues: list[NewCertificate] = field(default_factory=list)
    certifications: list[Certification] = field(default_factory=list)
    emissions: list[Emission] = field(default_factory=list)


class GroupPlanner:
    """Applies the certifier's rules to a group of events, event after event, in memory."""

    def __init__(
        self,
        tenant_id: UUID,
        enrolments: Mapping[UUID, CompletedEnrolment],
        issued_completions: Iterable[UUID],
        live: Mapping[UUID, Certificate],
        new_token: Callable[[], str],
    ) -> None:
        self._tenant_id = tenant_id
        self._enrolments = dict(enrolments)
        self._issued = set(issued_completions)
        # enrolment id -> its live certificate: one loaded, or one issued in this group
        self._live: dict[UUID, Certificate | NewCertificate] = dict(live)
        self._new_token = new_token
        self.plan = GroupPlan()

    def apply(self, event: CloudEvent[Any]) -> None:
        """Decide one event (in group order) and record its outcome."""
        if event.type == "enrolment.completed":
            outcome = self._completed(event)
        elif event.type == "enrolment.reopened":
            outcome = self._reopened(event)
        else:
            raise NotPlannable(f"the certifier does not handle {event.type}")
        self.plan.outcomes.append(outcome)

    def _enrolment(self, enrolment_id: UUID) -> CompletedEnrolment:
        enrolment = self._enrolments.get(enrolment_id)
        if enrolment is None:
            raise ReferenceNotFound(f"enrolment {enrolment_id} not found")
        return enrolment

    def _completed(self, event: CloudEvent[Any]) -> str:
        data: EnrolmentCompleted = event.data
        enrolment = self._enrolment(data.enrolment_id)
        if event.id in self._issued:
            return "already_issued"
        issued_at = issue_time(enrolment.status, enrolment.completed_at)
        if issued_at is None:
            return "stale"
        previous = self._live.get(enrolment.id)
        if previous is not None:  # a completion after a reopening we have not seen yet
            self._revoke(enrolment, previous, SUPERSEDED, event)
        issue = NewCertificate(
            id=derived_id("certificate", self._tenant_id, event.id),
            enrolment=enrolment,
            issued_at=issued_at,
            public_token=self._new_token(),
            completion_event_id=event.id,
        )
        self.plan.issues.append(issue)
        cause = (event.id, event.type, event.time)
        self.plan.certifications.append(Certification(enrolment, issued_at, cause))
        self.plan.emissions.append(Emission("certificate.issued", issue.id, enrolment, event))
        self._issued.add(event.id)
        self._live[enrolment.id] = issue
        self._enrolments[enrolment.id] = enrolment.with_status("certified")
        return "issued"

    def _reopened(self, event: CloudEvent[Any]) -> str:
        data: EnrolmentReopened = event.data
        enrolment = self._enrolment(data.enrolment_id)
        if not reopen_applies(enrolment.status):
            return "stale"
        certificate = self._live.get(enrolment.id)
        if certificate is None:
            return "nothing_to_revoke"
        self._revoke(enrolment, certificate, data.reason, event)
        return "revoked"

    def _revoke(
        self,
        enrolment: CompletedEnrolment,
        certificate: Certificate | NewCertificate,
        reason: str,
        event: CloudEvent[Any],
    ) -> None:
        if isinstance(certificate, NewCertificate):
            # The rules make this unreachable (an issue certifies the enrolment, and a
            # certified enrolment is neither reopened nor completed again here).
            raise NotPlannable("a certificate issued in this group would be revoked")
        self.plan.revocations.append(Revocation(certificate, reason, event.time))
        self.plan.emissions.append(
            Emission("certificate.revoked", certificate.id, enrolment, event, reason)
        )
        del self._live[enrolment.id]
