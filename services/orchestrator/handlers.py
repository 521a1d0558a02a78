"""The orchestrator's handlers: load the facts, let the pure rules decide, save.

Each handler runs inside the tenant unit of work the consumer pipeline opened
for one event (and never commits it). Locks keep concurrent events for the
same submission, assignment or enrolment from racing, always in that order:
submission -> assignment -> enrolment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from services.orchestrator.adapters.ledger import Ledger
from services.orchestrator.adapters.working_set import WorkingSet
from services.orchestrator.domain import rules
from services.orchestrator.domain.model import ProgrammeSnapshot, Requirement
from services.orchestrator.ports import LedgerStore
from services.orchestrator.records import Cause, Enrolment, Link, ProgressRow
from shared.db.uow import TenantUnitOfWork
from shared.errors import PermanentError, ReferenceNotFound
from shared.events import (
    CloudEvent,
    EnrolmentCompleted,
    EnrolmentCreated,
    EnrolmentReopened,
    EvidenceItem,
    ScoreRemediated,
    SubmissionCreated,
    new_event,
)
from shared.ids import derived_id

SOURCE = "/programmes/orchestrator"


class CrossTenantReference(PermanentError):
    """The event names a row that belongs to another tenant."""

    error_class = "CrossTenantReference"


def _no_op() -> None:
    pass


class Orchestrator:
    """Applies enrolment, submission and remediation events to the progress ledger."""

    def __init__(
        self,
        topic_prefix: str = "",
        on_assignments_requested: Callable[[], None] = _no_op,
        on_events_enqueued: Callable[[], None] = _no_op,
    ) -> None:
        self._topic_prefix = topic_prefix
        self._on_assignments_requested = on_assignments_requested
        self._on_events_enqueued = on_events_enqueued

    async def on_enrolment_created(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
        """Create the enrolment pinned to its version, its ledger, its first assignments."""
        data: EnrolmentCreated = event.data
        ledger = Ledger(uow.connection)
        if await ledger.enrolment_exists(data.enrolment_id):
            return "already_enrolled"
        await _refuse_foreign(ledger, "enrolment", data.enrolment_id)
        snapshot_json = await _pinned_snapshot(ledger, data)
        if data.renewal_of_enrolment_id and not await ledger.enrolment_exists(
            data.renewal_of_enrolment_id
        ):
            await _refuse_foreign(ledger, "enrolment", data.renewal_of_enrolment_id)
            raise ReferenceNotFound(f"renewed enrolment {data.renewal_of_enrolment_id} not found")
        snapshot = ProgrammeSnapshot.from_json(snapshot_json)
        await ledger.insert_enrolment(
            id=data.enrolment_id,
            user_id=data.user_id,
            org_unit_id=event.orgunitid,
            programme_id=data.program_id,
            programme_version=snapshot.version,
            snapshot=snapshot_json,
            user_display_name=data.user_display_name,
            enrolled_at=data.enrolled_at,
            renewal_of_enrolment_id=data.renewal_of_enrolment_id,
            event_id=event.id,
        )
        await ledger.insert_progress(data.enrolment_id, snapshot)
        await self._request(
            uow,
            ledger,
            data.enrolment_id,
            data.user_id,
            event.orgunitid,
            rules.unlocked(snapshot, met=()),
        )
        return "applied"

    async def on_submission_created(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
        """Record the attempt; re-decide its requirement if this system assigned it."""
        return await self._submission_created(uow, Ledger(uow.connection), event)

    async def on_submissions_created(
        self, uow: TenantUnitOfWork, events: Sequence[CloudEvent[Any]]
    ) -> list[str]:
        """A tenant's batch of `submission.created`, with the same effects as applying
        the events one by one in order (`on_submission_created`), in a few set-based
        statements: the handlers run unchanged on a working set loaded up front."""
        ledger = await WorkingSet.load(
            uow.connection,
            submission_ids=[e.data.submission_id for e in events],
            assignment_ids=[e.data.assignment_id for e in events],
        )
        outcomes = [await self._submission_created(uow, ledger, event) for event in events]
        await ledger.flush()
        return outcomes

    async def on_scores_remediated(
        self, uow: TenantUnitOfWork, events: Sequence[CloudEvent[Any]]
    ) -> list[str]:
        """A tenant's batch of `score.remediated`, equivalent to `on_score_remediated`
        applied to each event in order (see `on_submissions_created`)."""
        ledger = await WorkingSet.load(
            uow.connection, submission_ids=[e.data.submission_id for e in events]
        )
        outcomes = [await self._score_remediated(uow, ledger, event) for event in events]
        await ledger.flush()
        return outcomes

    async def _submission_created(
        self, uow: TenantUnitOfWork, ledger: LedgerStore, event: CloudEvent[Any]
    ) -> str:
        data: SubmissionCreated = event.data
        await ledger.lock("submission", data.submission_id)
        if await ledger.submission_assignment(data.submission_id) is None:
            await _refuse_foreign(ledger, "submission", data.submission_id)
        await ledger.record_submission(
            id=data.submission_id,
            assignment_id=data.assignment_id,
            user_id=data.user_id,
            evaluation_id=data.evaluation_id,
            submitted_at=data.submitted_at,
            event_id=event.id,
        )
        await ledger.record_score(
            submission_id=data.submission_id,
            score_version=data.score_version,
            score=data.score,
            passed=data.passed,
            correction_batch_id=None,
            effective_at=data.submitted_at,
            event_id=event.id,
        )
        return await self._apply_to_assignment(uow, ledger, data.assignment_id, _cause(event))

    async def on_score_remediated(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
        """Record the new score version; only the highest version ever counts."""
        return await self._score_remediated(uow, Ledger(uow.connection), event)

    async def _score_remediated(
        self, uow: TenantUnitOfWork, ledger: LedgerStore, event: CloudEvent[Any]
    ) -> str:
        data: ScoreRemediated = event.data
        await ledger.lock("submission", data.submission_id)
        assignment_id = await ledger.submission_assignment(data.submission_id)
        if assignment_id is None:
            await _refuse_foreign(ledger, "submission", data.submission_id)
        highest = await ledger.record_score(
            submission_id=data.submission_id,
            score_version=data.score_version,
            score=data.score,
            passed=data.passed,
            correction_batch_id=data.correction_batch_id,
            effective_at=data.remediated_at,
            event_id=event.id,
        )
        if not highest:
            return "stale"
        if assignment_id is None:
            return "deferred"  # applied when the submission itself arrives
        return await self._apply_to_assignment(uow, ledger, assignment_id, _cause(event))

    async def on_assignment_created(
        self, uow: TenantUnitOfWork, link: Link, assignment_id: UUID, now: datetime
    ) -> str:
        """Record the delivery engine's assignment id, and apply any submission that
        arrived for it before the link was known."""
        ledger = Ledger(uow.connection)
        await ledger.lock("assignment", assignment_id)
        if not await ledger.link_assignment(link, assignment_id):
            return "already_linked"
        cause = Cause(derived_id("assignment.created", assignment_id), "assignment.created", now)
        if not await ledger.attempts(assignment_id):
            return "linked"
        return await self._reevaluate(uow, ledger, link, assignment_id, cause)

    async def _apply_to_assignment(
        self, uow: TenantUnitOfWork, ledger: LedgerStore, assignment_id: UUID, cause: Cause
    ) -> str:
        await ledger.lock("assignment", assignment_id)
        link = await ledger.link(assignment_id)
        if link is None:
            await _refuse_foreign(ledger, "assignment", assignment_id)
            return "ignored"  # not a programme assignment (or not linked yet: kept)
        return await self._reevaluate(uow, ledger, link, assignment_id, cause)

    async def _reevaluate(
        self,
        uow: TenantUnitOfWork,
        ledger: LedgerStore,
        link: Link,
        assignment_id: UUID,
        cause: Cause,
    ) -> str:
        """Decide the requirement from all its attempts, then the enrolment."""
        enrolment = await ledger.lock_enrolment(link.enrolment_id)
        if enrolment is None:  # pragma: no cover - the foreign keys forbid it
            raise ReferenceNotFound(f"enrolment {link.enrolment_id} not found")
        requirement = enrolment.snapshot.requirement(link.requirement_id)
        attempts = await ledger.attempts(assignment_id)
        after = rules.evaluate_requirement(requirement, attempts)
        rows = await ledger.progress(enrolment.id)
        before = rows[requirement.id]
        reason = rules.transition_reason(before.state, after)
        if reason is None:
            return "unchanged"
        await ledger.record_decision(enrolment.id, before, after, reason, cause)
        rows[requirement.id] = replace(before, state=after)
        met_at = _met_at(rows)
        if after.status == "met":
            await self._request(
                uow,
                ledger,
                enrolment.id,
                enrolment.user_id,
                enrolment.org_unit_id,
                rules.unlocked(enrolment.snapshot, met_at),
            )
        versions = {a.submission_id: a.score_version for a in attempts}
        await self._decide_enrolment(uow, ledger, enrolment, rows, before, versions, cause)
        return "applied"

    async def _decide_enrolment(
        self,
        uow: TenantUnitOfWork,
        ledger: LedgerStore,
        enrolment: Enrolment,
        rows: dict[UUID, ProgressRow],
        changed: ProgressRow,
        versions: dict[UUID, int],
        cause: Cause,
    ) -> None:
        met_at = _met_at(rows)
        complete = rules.is_complete(enrolment.snapshot, met_at)
        decision = rules.enrolment_decision(enrolment.status, complete)
        if decision == "complete":
            completed_at = rules.completion_time(enrolment.snapshot, met_at)
            await ledger.set_enrolment_status(
                enrolment, "completed", completed_at, "complete", cause
            )
            await self._emit(
                uow, ledger, _completed(uow.tenant_id, enrolment, rows, completed_at, cause)
            )
        elif complete and enrolment.status in ("completed", "certified"):
            # Still complete, but the evidence moved (e.g. an earlier passing attempt
            # arrived late): keep completion a function of the facts, not of arrival.
            completed_at = rules.completion_time(enrolment.snapshot, met_at)
            if completed_at != enrolment.completed_at:
                await ledger.set_enrolment_status(
                    enrolment, enrolment.status, completed_at, "completion_time_corrected", cause
                )
        elif decision == "reopen":
            await ledger.set_enrolment_status(
                enrolment, "in_progress", None, "reopened", cause, changed.requirement_id
            )
            taken_back = changed.state.submission_id
            assert taken_back is not None  # only a met requirement can be taken back
            await self._emit(
                uow,
                ledger,
                _reopened(
                    uow.tenant_id,
                    enrolment,
                    changed.requirement_id,
                    taken_back,
                    versions[taken_back],
                    cause,
                ),
            )

    async def _request(
        self,
        uow: TenantUnitOfWork,
        ledger: LedgerStore,
        enrolment_id: UUID,
        user_id: UUID,
        org_unit_id: UUID | None,
        requirements: list[Requirement],
    ) -> None:
        requests = [(r.id, r.evaluation_id) for r in requirements]
        if await ledger.request_assignments(
            uow.tenant_id, enrolment_id, user_id, org_unit_id, requests
        ):
            uow.after_commit(self._on_assignments_requested)

    async def _emit(
        self, uow: TenantUnitOfWork, ledger: LedgerStore, event: CloudEvent[Any]
    ) -> None:
        key = str(event.data.enrolment_id)
        if await ledger.enqueue(event, topic_prefix=self._topic_prefix, key=key):
            uow.after_commit(self._on_events_enqueued)


def _cause(event: CloudEvent[Any]) -> Cause:
    return Cause(event.id, event.type, event.time, event.traceparent)


def _met_at(rows: dict[UUID, ProgressRow]) -> dict[UUID, datetime]:
    return {
        rid: row.state.met_at
        for rid, row in rows.items()
        if row.state.status == "met" and row.state.met_at is not None
    }


async def _refuse_foreign(ledger: LedgerStore, kind: str, key: UUID) -> None:
    if await ledger.belongs_to_another_tenant(kind, key):
        raise CrossTenantReference(f"{kind} {key} belongs to another tenant")


async def _pinned_snapshot(ledger: Ledger, data: EnrolmentCreated) -> dict[str, Any]:
    pinned = await ledger.pinned_version(data.program_id, data.enrolled_at)
    if pinned is None:
        await _refuse_foreign(ledger, "programme", data.program_id)
        raise ReferenceNotFound(f"programme {data.program_id} not found")
    if pinned.programme_status == "archived":
        raise PermanentError(f"programme {data.program_id} is archived", "ProgrammeArchived")
    if pinned.definition is None:
        raise PermanentError(
            f"programme {data.program_id} had no version published at {data.enrolled_at}",
            "NoPublishedVersion",
        )
    return pinned.definition


def _evidence(snapshot: ProgrammeSnapshot, rows: dict[UUID, ProgressRow]) -> list[EvidenceItem]:
    return [
        EvidenceItem(
            requirement_id=r.id,
            submission_id=state.submission_id,
            score_version=state.score_version,
            score=None if state.score is None else float(state.score),
            passed=state.passed,
        )
        for r in snapshot.requirements
        if (state := rows[r.id].state).status == "met"
        and state.submission_id is not None
        and state.score_version is not None
    ]


def _completed(
    tenant_id: UUID,
    enrolment: Enrolment,
    rows: dict[UUID, ProgressRow],
    completed_at: datetime,
    cause: Cause,
) -> CloudEvent[Any]:
    return new_event(
        "enrolment.completed",
        event_id=derived_id("enrolment.completed", tenant_id, enrolment.id, cause.event_id),
        source=SOURCE,
        tenant_id=tenant_id,
        time=completed_at,
        org_unit_id=enrolment.org_unit_id,
        traceparent=cause.traceparent,
        data=EnrolmentCompleted(
            enrolment_id=enrolment.id,
            user_id=enrolment.user_id,
            program_id=enrolment.programme_id,
            program_version=enrolment.programme_version,
            completed_at=completed_at,
            evidence=_evidence(enrolment.snapshot, rows),
        ),
    )


def _reopened(
    tenant_id: UUID,
    enrolment: Enrolment,
    requirement_id: UUID,
    submission_id: UUID,
    score_version: int,
    cause: Cause,
) -> CloudEvent[Any]:
    """The requirement's evidence (`submission_id`, now at `score_version`) no longer
    satisfies it."""
    requirement = enrolment.snapshot.requirement(requirement_id)
    return new_event(
        "enrolment.reopened",
        event_id=derived_id("enrolment.reopened", tenant_id, enrolment.id, cause.event_id),
        source=SOURCE,
        tenant_id=tenant_id,
        time=cause.time,
        org_unit_id=enrolment.org_unit_id,
        traceparent=cause.traceparent,
        data=EnrolmentReopened(
            enrolment_id=enrolment.id,
            requirement_id=requirement.id,
            submission_id=submission_id,
            score_version=score_version,
            reason=(
                f"requirement {requirement.key!r} is no longer met: submission "
                f"{submission_id} was corrected to score version {score_version}"
            ),
        ),
    )
