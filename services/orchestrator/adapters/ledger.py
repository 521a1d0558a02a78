"""The orchestrator's storage: typed methods over the named queries of ledger.sql.

Bound to one open tenant unit of work; it never commits.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from services.orchestrator.domain.model import (
    Attempt,
    ProgrammeSnapshot,
    RequirementState,
    stored_score,
)
from services.orchestrator.records import (
    AssignmentRequest,
    Cause,
    Enrolment,
    Link,
    PinnedVersion,
    ProgressRow,
)
from shared.db.enrolments import record_status_change
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries
from shared.events import CloudEvent
from shared.ids import assignment_idempotency_key
from shared.outbox import enqueue

_sql = load_queries(Path(__file__).with_name("sql") / "ledger.sql")


class Ledger:
    """Reads and writes of the progress ledger inside one tenant transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock(self, kind: str, key: UUID) -> None:
        """Serialise with every other transaction working on the same (kind, key)."""
        await _sql.lock_key(self._conn, key=f"{kind}:{key}")

    async def belongs_to_another_tenant(self, kind: str, key: UUID) -> bool:
        """Whether `key` names a row of another tenant (checked after a miss here)."""
        return bool(await _sql.foreign_reference(self._conn, kind=kind, id=key))

    async def pinned_version(self, programme_id: UUID, at: datetime) -> PinnedVersion | None:
        """The programme (None if not in this tenant) and its version in force at `at`."""
        row = await _sql.pinned_version(self._conn, programme_id=programme_id, enrolled_at=at)
        if row is None:
            return None
        return PinnedVersion(row["status"], row["version"], row["definition"])

    async def enrolment_exists(self, enrolment_id: UUID) -> bool:
        """Whether this tenant has the enrolment."""
        return bool(await _sql.enrolment_exists(self._conn, enrolment_id=enrolment_id))

    async def insert_enrolment(self, **columns: Any) -> bool:
        """Create an enrolment; False if it already existed."""
        return bool(await _sql.insert_enrolment(self._conn, **columns))

    async def insert_progress(self, enrolment_id: UUID, snapshot: ProgrammeSnapshot) -> None:
        """One pending ledger row per requirement of the snapshot."""
        await _sql.insert_progress(
            self._conn,
            enrolment_id=enrolment_id,
            programme_id=snapshot.programme_id,
            programme_version=snapshot.version,
            requirement_ids=[r.id for r in snapshot.requirements],
        )

    async def request_assignments(
        self,
        tenant_id: UUID,
        enrolment_id: UUID,
        user_id: UUID,
        org_unit_id: UUID | None,
        requests: list[tuple[UUID, UUID]],
    ) -> int:
        """Record (requirement, evaluation) requests not made yet, keyed; returns how
        many are new."""
        if not requests:
            return 0
        requirement_ids = [requirement_id for requirement_id, _ in requests]
        evaluation_ids = [evaluation_id for _, evaluation_id in requests]
        keys = [
            assignment_idempotency_key(tenant_id, enrolment_id, r, user_id) for r in requirement_ids
        ]
        return int(
            await _sql.request_assignments(
                self._conn,
                enrolment_id=enrolment_id,
                user_id=user_id,
                org_unit_id=org_unit_id,
                requirement_ids=requirement_ids,
                evaluation_ids=evaluation_ids,
                keys=keys,
            )
        )

    async def record_submission(self, **columns: Any) -> bool:
        """Store a submission's facts; False if it was already known."""
        return bool(await _sql.record_submission(self._conn, **columns))

    async def record_score(self, *, score: float | None, **columns: Any) -> bool:
        """Append a score version; True when it is new and now the highest."""
        return bool(await _sql.record_score(self._conn, score=stored_score(score), **columns))

    async def submission_assignment(self, submission_id: UUID) -> UUID | None:
        """The assignment a known submission was made for."""
        row = await _sql.submission(self._conn, id=submission_id)
        return None if row is None else UUID(str(row["assignment_id"]))

    async def link(self, assignment_id: UUID) -> Link | None:
        """The enrolment and requirement an assignment serves, if this system requested it."""
        row = await _sql.assignment_by_id(self._conn, assignment_id=assignment_id)
        if row is None:
            return None
        return Link(row["enrolment_id"], row["requirement_id"], row["user_id"])

    async def lock_enrolment(self, enrolment_id: UUID) -> Enrolment | None:
        """Load an enrolment and hold its row lock until the transaction ends."""
        row = await _sql.lock_enrolment(self._conn, id=enrolment_id)
        if row is None:
            return None
        return Enrolment.from_row(row, ProgrammeSnapshot.from_json(row["snapshot"]))

    async def attempts(self, assignment_id: UUID) -> list[Attempt]:
        """Every submission for the assignment at its highest known score version."""
        rows = await fetch_all(_sql.attempts(self._conn, assignment_id=assignment_id))
        return [
            Attempt(
                submission_id=r["submission_id"],
                score_version=r["score_version"],
                score=r["score"],
                passed=r["passed"],
                submitted_at=r["submitted_at"],
                effective_at=r["effective_at"],
            )
            for r in rows
        ]

    async def progress(self, enrolment_id: UUID) -> dict[UUID, ProgressRow]:
        """The enrolment's ledger rows by requirement."""
        rows = await fetch_all(_sql.progress(self._conn, enrolment_id=enrolment_id))
        return {r["requirement_id"]: ProgressRow.from_row(r) for r in rows}

    async def record_decision(
        self,
        enrolment_id: UUID,
        before: ProgressRow,
        after: RequirementState,
        reason: str,
        cause: Cause,
    ) -> None:
        """Append the decision to the history, then make it the row's state."""
        seq = before.decision_seq + 1
        evidence = {
            "submission_id": after.submission_id,
            "score_version": after.score_version,
            "score": after.score,
            "passed": after.passed,
            "attempt_count": after.attempt_count,
        }
        await _sql.append_progress_history(
            self._conn,
            enrolment_id=enrolment_id,
            requirement_id=before.requirement_id,
            seq=seq,
            status=after.status,
            previous_status=before.state.status,
            reason=reason,
            event_id=cause.event_id,
            event_type=cause.event_type,
            decided_at=cause.time,
            **evidence,
        )
        await _sql.update_progress(
            self._conn,
            enrolment_id=enrolment_id,
            requirement_id=before.requirement_id,
            seq=seq,
            status=after.status,
            met_at=after.met_at,
            **evidence,
        )

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
        await _sql.set_enrolment_status(
            self._conn, id=enrolment.id, status=status, completed_at=completed_at
        )
        await record_status_change(
            self._conn,
            enrolment.id,
            status=status,
            previous_status=enrolment.status,
            reason=reason,
            cause=(cause.event_id, cause.event_type, cause.time),
            requirement_id=requirement_id,
        )

    async def enqueue(self, event: CloudEvent[Any], *, topic_prefix: str, key: str) -> bool:
        """Write `event` to the outbox with the transaction; False if already written."""
        return await enqueue(self._conn, event, topic_prefix=topic_prefix, key=key)

    async def assignment_request(self, link: Link) -> AssignmentRequest | None:
        """The request still waiting to be created, if any."""
        row = await _sql.assignment_request(
            self._conn,
            enrolment_id=link.enrolment_id,
            requirement_id=link.requirement_id,
            user_id=link.user_id,
        )
        if row is None:
            return None
        return AssignmentRequest(
            row["idempotency_key"], row["evaluation_id"], row["org_unit_id"], row["attempts"]
        )

    async def link_assignment(self, link: Link, assignment_id: UUID) -> bool:
        """Record the delivery engine's assignment id; False if already recorded."""
        return bool(
            await _sql.link_assignment(
                self._conn,
                enrolment_id=link.enrolment_id,
                requirement_id=link.requirement_id,
                user_id=link.user_id,
                assignment_id=assignment_id,
            )
        )

    async def defer_assignment(self, link: Link, error: str, delay_seconds: float) -> None:
        """Count a failed attempt and schedule the next one."""
        await _sql.defer_assignment(
            self._conn,
            enrolment_id=link.enrolment_id,
            requirement_id=link.requirement_id,
            user_id=link.user_id,
            error=error[:500],
            delay_seconds=delay_seconds,
        )


async def claim_assignment_requests(
    conn: Connection, now: datetime, limit: int, lease_seconds: float
) -> list[tuple[UUID, Link]]:
    """(tenant, link) of requests of every tenant due for (re)sending at `now`, that no
    other dispatcher holds; each is leased to the caller for `lease_seconds` (its next
    attempt moves past the lease) once the caller's transaction commits."""
    rows = await fetch_all(
        _sql.assignments_claim(conn, now=now, limit=limit, lease_seconds=lease_seconds)
    )
    return [
        (r["tenant_id"], Link(r["enrolment_id"], r["requirement_id"], r["user_id"])) for r in rows
    ]


async def pending_assignment_requests(conn: Connection) -> int:
    """Assignment requests of every tenant still waiting for the delivery engine."""
    return int(await _sql.assignments_pending(conn))
