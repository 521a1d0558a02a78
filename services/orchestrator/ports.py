"""The storage port the orchestrator's handlers are written against.

Two adapters implement it: `adapters.ledger.Ledger` reads and writes row by row
inside one tenant transaction (one message per transaction), and
`adapters.working_set.WorkingSet` serves a whole batch of one tenant from state
it loaded with a few set-based queries and writes back the same way. The
handlers run unchanged on either, which is what keeps the two paths equivalent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from services.orchestrator.domain.model import Attempt, RequirementState
from services.orchestrator.records import Cause, Enrolment, Link, ProgressRow
from shared.events import CloudEvent


class LedgerStore(Protocol):
    """What the submission and remediation handlers read and write."""

    async def lock(self, kind: str, key: UUID) -> None:
        """Serialise with every other transaction working on the same (kind, key)."""

    async def belongs_to_another_tenant(self, kind: str, key: UUID) -> bool:
        """Whether `key` names a row of another tenant (asked after a miss here)."""

    async def record_submission(
        self,
        *,
        id: UUID,
        assignment_id: UUID,
        user_id: UUID,
        evaluation_id: UUID,
        submitted_at: datetime,
        event_id: UUID,
    ) -> bool:
        """Store a submission's facts; False if it was already known."""

    async def record_score(
        self,
        *,
        submission_id: UUID,
        score_version: int,
        score: float | None,
        passed: bool | None,
        correction_batch_id: UUID | None,
        effective_at: datetime,
        event_id: UUID,
    ) -> bool:
        """Append a score version; True when it is new and now the highest."""

    async def submission_assignment(self, submission_id: UUID) -> UUID | None:
        """The assignment a known submission was made for."""

    async def link(self, assignment_id: UUID) -> Link | None:
        """The enrolment and requirement an assignment serves, if this system requested it."""

    async def lock_enrolment(self, enrolment_id: UUID) -> Enrolment | None:
        """Load an enrolment and hold its row lock until the transaction ends."""

    async def attempts(self, assignment_id: UUID) -> list[Attempt]:
        """Every submission for the assignment at its highest known score version."""

    async def progress(self, enrolment_id: UUID) -> dict[UUID, ProgressRow]:
        """The enrolment's ledger rows by requirement (a copy the caller may change)."""

    async def record_decision(
        self,
        enrolment_id: UUID,
        before: ProgressRow,
        after: RequirementState,
        reason: str,
        cause: Cause,
    ) -> None:
        """Append the decision to the history, then make it the row's state."""

    async def set_enrolment_status(
        self,
        enrolment: Enrolment,
        status: str,
        completed_at: datetime | None,
        reason: str,
        cause: Cause,
        requirement_id: UUID | None = None,
    ) -> None:
        """Change the enrolment's status, with its history entry."""

    async def request_assignments(
        self,
        tenant_id: UUID,
        enrolment_id: UUID,
        user_id: UUID,
        org_unit_id: UUID | None,
        requests: list[tuple[UUID, UUID]],
    ) -> int:
        """Record (requirement, evaluation) requests not made yet, each with its
        deterministic Idempotency-Key (`shared.ids.assignment_idempotency_key`);
        returns how many are new."""

    async def enqueue(self, event: CloudEvent[Any], *, topic_prefix: str, key: str) -> bool:
        """Write `event` to the outbox with the transaction; False if already written."""
