"""A batch of one tenant's events, served from memory and written back in bulk.

`WorkingSet.load` takes the locks a batch needs and reads every row its events can
touch in one round trip; the handlers then run on it exactly as they run on
`Ledger` (it implements the same `LedgerStore` port), and `flush` writes what they
did with two set-based statements (ADR 0015). The pipeline wraps all of it
in one tenant transaction, so the batch commits or rolls back as a whole.

Anything the handlers ask for that was not loaded raises `NotLoaded` rather than
guessing: the pipeline then redoes the batch one message at a time, on `Ledger`.
Semantics never depend on which path ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from services.orchestrator.domain.model import (
    Attempt,
    ProgrammeSnapshot,
    RequirementState,
    stored_score,
)
from services.orchestrator.records import Cause, Enrolment, Link, ProgressRow
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries
from shared.events import CloudEvent
from shared.ids import assignment_idempotency_key
from shared.outbox import outbox_columns

_sql = load_queries(Path(__file__).with_name("sql") / "working_set.sql")


# Snapshots by (tenant, programme, version): immutable, shared by every enrolment
# pinned to that version, so parsed once per process (bounded, cleared when full).
_SNAPSHOTS: dict[tuple[UUID, UUID, int], ProgrammeSnapshot] = {}
_SNAPSHOTS_KEPT = 4096


class NotLoaded(RuntimeError):
    """The batch needed a row the working set did not load: redo it message by message."""


@dataclass(frozen=True)
class _Submission:
    assignment_id: UUID
    submitted_at: datetime


@dataclass(frozen=True)
class _Score:
    score: Decimal | None
    passed: bool | None
    effective_at: datetime


# `write_batch`'s parameters for each kind of row the batch writes, in the order of
# the tuples recorded for it (record_submission, record_score, ...; flush builds the
# changed enrolments' and progress rows' from the working set).
_SUBMISSION_COLUMNS = (
    "ids", "assignment_ids", "user_ids", "evaluation_ids", "submitted_ats", "event_ids"
)  # fmt: skip
_SCORE_COLUMNS = (
    "score_submission_ids", "score_versions", "scores", "passed", "correction_batch_ids",
    "effective_ats", "score_event_ids",
)  # fmt: skip
_HISTORY_COLUMNS = (
    "history_enrolment_ids", "history_requirement_ids", "history_seqs", "history_statuses",
    "history_previous_statuses", "history_reasons", "history_submission_ids",
    "history_score_versions", "history_scores", "history_passed", "history_attempt_counts",
    "history_event_ids", "history_event_types", "history_decided_ats",
)  # fmt: skip
_STATUS_COLUMNS = (
    "status_enrolment_ids", "status_statuses", "status_previous_statuses", "status_reasons",
    "status_requirement_ids", "status_event_ids", "status_event_types", "status_decided_ats",
)  # fmt: skip
_REQUEST_COLUMNS = (
    "request_enrolment_ids", "request_requirement_ids", "request_user_ids", "request_keys",
    "request_evaluation_ids", "request_org_unit_ids",
)  # fmt: skip
_CHANGED_COLUMNS = ("changed_ids", "changed_statuses", "changed_completed_ats", "changed_reopened")
_PROGRESS_COLUMNS = (
    "progress_enrolment_ids", "progress_requirement_ids", "progress_seqs", "progress_statuses",
    "progress_submission_ids", "progress_score_versions", "progress_scores", "progress_passed",
    "progress_attempt_counts", "progress_met_ats",
)  # fmt: skip


def _columns(rows: Sequence[tuple[Any, ...]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows (tuples in the order of `names`) to the column arrays `unnest` takes,
    by parameter name."""
    columns = zip(*rows, strict=True) if rows else ((),) * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


class WorkingSet:
    """The rows one tenant's batch reads and writes, locked for its transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._locked: set[tuple[str, UUID]] = set()
        self._submissions: dict[UUID, _Submission] = {}
        self._absent_submissions: set[UUID] = set()
        self._scores: dict[UUID, dict[int, _Score]] = {}
        self._links: dict[UUID, Link | None] = {}
        self._by_assignment: dict[UUID, list[UUID]] = {}
        self._enrolments: dict[UUID, Enrolment] = {}
        self._reopened: set[UUID] = set()
        self._progress: dict[UUID, dict[UUID, ProgressRow]] = {}
        self._requested: set[tuple[UUID, UUID, UUID]] = set()
        self._probed: dict[str, set[UUID]] = {}
        self._foreign: dict[str, set[UUID]] = {}
        # What the batch wrote, in order.
        self._new_submissions: list[tuple[Any, ...]] = []
        self._new_scores: list[tuple[Any, ...]] = []
        self._decisions: list[tuple[Any, ...]] = []
        self._changed_progress: set[tuple[UUID, UUID]] = set()
        self._status_changes: list[tuple[Any, ...]] = []
        self._new_requests: list[tuple[Any, ...]] = []
        self._events: dict[UUID, tuple[CloudEvent[Any], str]] = {}
        self._topic_prefix = ""  # the service's, given with every event

    @classmethod
    async def load(
        cls,
        conn: Connection,
        *,
        submission_ids: Iterable[UUID],
        assignment_ids: Iterable[UUID] = (),
    ) -> WorkingSet:
        """Lock and read what events about these submissions (and, for new ones,
        these assignments) can touch: the same locks, in the same order, as the
        one-message path, in one round trip (`working_set_load`, migration
        20261203000000)."""
        ws = cls(conn)
        submissions = sorted(set(submission_ids))
        rows = await fetch_all(
            _sql.load(conn, submission_ids=submissions, assignment_ids=sorted(set(assignment_ids)))
        )
        facts: dict[str, list[Any]] = {}
        for row in rows:
            facts.setdefault(row["kind"], []).append(row)

        for row in facts.get("submission", ()):
            ws._submissions[row["id"]] = _Submission(row["assignment_id"], row["submitted_at"])
        ws._absent_submissions = set(submissions) - set(ws._submissions)
        ws._probed["submission"] = set(ws._absent_submissions)
        foreign = {row["id"] for row in facts.get("foreign_submission", ())}
        ws._foreign["submission"] = foreign & ws._absent_submissions
        ws._locked.update(("submission", key) for key in submissions)

        # The assignments the function locked: the events' and the stored submissions'.
        assignments = sorted(
            set(assignment_ids) | {s.assignment_id for s in ws._submissions.values()}
        )
        ws._locked.update(("assignment", key) for key in assignments)
        ws._links = dict.fromkeys(assignments)
        for row in facts.get("link", ()):
            ws._links[row["assignment_id"]] = Link(
                row["enrolment_id"], row["requirement_id"], row["user_id"]
            )
        ws._probed["assignment"] = {a for a, link in ws._links.items() if link is None}
        foreign = {row["assignment_id"] for row in facts.get("foreign_assignment", ())}
        ws._foreign["assignment"] = foreign & ws._probed["assignment"]

        ws._read_attempts(assignments, submissions, facts.get("attempt", []))
        await ws._read_enrolments(facts.get("enrolment", []), facts.get("progress", []))
        for row in facts.get("requested", ()):
            ws._requested.add((row["enrolment_id"], row["requirement_id"], row["requested_by"]))
        return ws

    def _read_attempts(
        self, assignments: list[UUID], submissions: list[UUID], rows: list[Any]
    ) -> None:
        """Every submission of these assignments, and the score versions of those
        and of these (possibly not yet known) submissions."""
        self._by_assignment = {a: [] for a in assignments}
        self._scores = {s: {} for s in submissions}
        for row in rows:
            submission_id = row["submission_id"]
            if row["assignment_id"] is not None:
                self._submissions[submission_id] = _Submission(
                    row["assignment_id"], row["submitted_at"]
                )
            versions = self._scores.setdefault(submission_id, {})
            if row["score_version"] is not None:
                versions[row["score_version"]] = _Score(
                    row["score"], row["passed"], row["effective_at"]
                )
        for submission_id, submission in self._submissions.items():
            self._scores.setdefault(submission_id, {})
            if submission.assignment_id in self._by_assignment:
                self._by_assignment[submission.assignment_id].append(submission_id)

    async def _read_enrolments(self, enrolments: list[Any], progress: list[Any]) -> None:
        """The locked enrolments (their snapshots parsed once per process) and
        their ledger rows."""
        pinned = {
            r["id"]: (r["tenant_id"], r["programme_id"], r["programme_version"]) for r in enrolments
        }
        await self._load_snapshots(pinned)
        for row in enrolments:
            self._enrolments[row["id"]] = Enrolment.from_row(row, _SNAPSHOTS[pinned[row["id"]]])
            self._progress[row["id"]] = {}
        for row in progress:
            self._progress[row["enrolment_id"]][row["requirement_id"]] = ProgressRow.from_row(row)

    async def _load_snapshots(self, pinned: dict[UUID, tuple[UUID, UUID, int]]) -> None:
        """Parse the snapshots of the versions not seen yet by this process."""
        missing: dict[tuple[UUID, UUID, int], UUID] = {}
        for enrolment_id, key in pinned.items():
            if key not in _SNAPSHOTS:
                missing.setdefault(key, enrolment_id)
        if not missing:
            return
        if len(_SNAPSHOTS) + len(missing) > _SNAPSHOTS_KEPT:
            _SNAPSHOTS.clear()
        tenant_id = next(iter(missing))[0]
        for row in await fetch_all(_sql.snapshots_of(self._conn, ids=list(missing.values()))):
            key = (tenant_id, row["programme_id"], row["programme_version"])
            _SNAPSHOTS[key] = ProgrammeSnapshot.from_json(row["snapshot"])

    # The LedgerStore port.

    async def lock(self, kind: str, key: UUID) -> None:
        """Already held since `load` (NotLoaded otherwise)."""
        if (kind, key) not in self._locked:
            raise NotLoaded(f"no lock on {kind} {key}")

    async def belongs_to_another_tenant(self, kind: str, key: UUID) -> bool:
        """As probed in bulk at `load`."""
        if key not in self._probed.get(kind, ()):
            raise NotLoaded(f"{kind} {key} was not probed")
        return key in self._foreign[kind]

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
        if id in self._submissions:
            return False
        if id not in self._absent_submissions or assignment_id not in self._by_assignment:
            raise NotLoaded(f"submission {id} of assignment {assignment_id}")
        self._absent_submissions.discard(id)
        self._submissions[id] = _Submission(assignment_id, submitted_at)
        self._by_assignment[assignment_id].append(id)
        self._new_submissions.append(
            (id, assignment_id, user_id, evaluation_id, submitted_at, event_id)
        )
        return True

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
        versions = self._scores.get(submission_id)
        if versions is None:
            raise NotLoaded(f"scores of submission {submission_id}")
        if score_version in versions:
            return False
        kept = stored_score(score)
        versions[score_version] = _Score(kept, passed, effective_at)
        self._new_scores.append(
            (
                submission_id,
                score_version,
                kept,
                passed,
                correction_batch_id,
                effective_at,
                event_id,
            )
        )
        return max(versions) == score_version

    async def submission_assignment(self, submission_id: UUID) -> UUID | None:
        """The assignment a known submission was made for."""
        submission = self._submissions.get(submission_id)
        if submission is not None:
            return submission.assignment_id
        if submission_id in self._absent_submissions:
            return None
        raise NotLoaded(f"submission {submission_id}")

    async def link(self, assignment_id: UUID) -> Link | None:
        """The enrolment and requirement an assignment serves, if this system requested it."""
        if assignment_id not in self._links:
            raise NotLoaded(f"assignment {assignment_id}")
        return self._links[assignment_id]

    async def lock_enrolment(self, enrolment_id: UUID) -> Enrolment | None:
        """The enrolment as this batch left it (locked since `load`)."""
        if enrolment_id not in self._enrolments:
            raise NotLoaded(f"enrolment {enrolment_id}")
        return self._enrolments[enrolment_id]

    async def attempts(self, assignment_id: UUID) -> list[Attempt]:
        """Every submission for the assignment at its highest known score version."""
        if assignment_id not in self._by_assignment:
            raise NotLoaded(f"attempts of assignment {assignment_id}")
        attempts = []
        for submission_id in self._by_assignment[assignment_id]:
            versions = self._scores[submission_id]
            if not versions:
                continue
            highest = max(versions)
            score = versions[highest]
            attempts.append(
                Attempt(
                    submission_id=submission_id,
                    score_version=highest,
                    score=score.score,
                    passed=score.passed,
                    submitted_at=self._submissions[submission_id].submitted_at,
                    effective_at=score.effective_at,
                )
            )
        return attempts

    async def progress(self, enrolment_id: UUID) -> dict[UUID, ProgressRow]:
        """The enrolment's ledger rows by requirement (a copy the caller may change)."""
        if enrolment_id not in self._progress:
            raise NotLoaded(f"progress of enrolment {enrolment_id}")
        return dict(self._progress[enrolment_id])

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
        self._decisions.append(
            (
                enrolment_id,
                before.requirement_id,
                seq,
                after.status,
                before.state.status,
                reason,
                after.submission_id,
                after.score_version,
                after.score,
                after.passed,
                after.attempt_count,
                cause.event_id,
                cause.event_type,
                cause.time,
            )
        )
        self._progress[enrolment_id][before.requirement_id] = ProgressRow(
            before.requirement_id, after, seq
        )
        self._changed_progress.add((enrolment_id, before.requirement_id))

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
        current = self._enrolments[enrolment.id]
        self._enrolments[enrolment.id] = replace(current, status=status, completed_at=completed_at)
        if status == "in_progress":
            self._reopened.add(enrolment.id)
        self._status_changes.append(
            (
                enrolment.id,
                status,
                enrolment.status,
                reason,
                requirement_id,
                cause.event_id,
                cause.event_type,
                cause.time,
            )
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
        many are new. The key of a request already made is never derived."""
        if enrolment_id not in self._enrolments:
            raise NotLoaded(f"assignments of enrolment {enrolment_id}")
        new = 0
        for requirement_id, evaluation_id in requests:
            if (enrolment_id, requirement_id, user_id) in self._requested:
                continue
            self._requested.add((enrolment_id, requirement_id, user_id))
            key = assignment_idempotency_key(tenant_id, enrolment_id, requirement_id, user_id)
            self._new_requests.append(
                (enrolment_id, requirement_id, user_id, key, evaluation_id, org_unit_id)
            )
            new += 1
        return new

    async def enqueue(self, event: CloudEvent[Any], *, topic_prefix: str, key: str) -> bool:
        """Write `event` to the outbox with the batch; False if already written."""
        if event.id in self._events:
            return False
        self._events[event.id] = (event, key)
        self._topic_prefix = topic_prefix
        return True

    async def flush(self) -> None:
        """Write everything the batch did, in one statement. A batch that changed
        nothing (a replay) writes nothing."""
        wrote = (
            self._new_submissions,
            self._new_scores,
            self._decisions,
            self._status_changes,
            self._new_requests,
            self._events,
        )
        if not any(wrote):
            return
        changed = [
            (e, self._enrolments[e].status, self._enrolments[e].completed_at, e in self._reopened)
            for e in sorted({change[0] for change in self._status_changes})
        ]
        progressed = [
            (e, r, row.decision_seq, row.state.status, row.state.submission_id,
             row.state.score_version, row.state.score, row.state.passed,
             row.state.attempt_count, row.state.met_at)
            for e, r in sorted(self._changed_progress)
            for row in (self._progress[e][r],)
        ]  # fmt: skip
        topics, keys, event_ids, bodies = outbox_columns(
            list(self._events.values()), topic_prefix=self._topic_prefix
        )
        await _sql.write_batch(
            self._conn,
            **_columns(self._new_submissions, _SUBMISSION_COLUMNS),
            **_columns(self._new_scores, _SCORE_COLUMNS),
            **_columns(self._decisions, _HISTORY_COLUMNS),
            **_columns(changed, _CHANGED_COLUMNS),
            **_columns(self._status_changes, _STATUS_COLUMNS),
            **_columns(self._new_requests, _REQUEST_COLUMNS),
            **_columns(progressed, _PROGRESS_COLUMNS),
            outbox_topics=topics,
            outbox_message_keys=keys,
            outbox_event_ids=event_ids,
            outbox_events=bodies,
        )
