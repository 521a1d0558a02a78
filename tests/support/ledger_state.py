"""The ledger as the database holds it after a run, read across tenants with the
admin connection: the order-independent end state (to compare with the oracle),
a hash of everything including the decision history (to compare a run with
itself, e.g. before and after a replay), and the invariants no fault may break."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.support.oracle import Canonical, digest, requirement_row, stamp

QUERIES = {
    "enrolments": "SELECT tenant_id, id, status, completed_at, certified_at, programme_version"
    " FROM enrolments ORDER BY id",
    "progress": "SELECT enrolment_id, requirement_id, status, attempt_count, submission_id,"
    " score_version, score, passed, completed_at, decision_seq FROM progress"
    " ORDER BY enrolment_id, requirement_id",
    "progress_history": "SELECT enrolment_id, requirement_id, seq, status, previous_status,"
    " reason, submission_id, score_version, score, passed, attempt_count, event_id, event_type,"
    " decided_at, recorded_at FROM progress_history ORDER BY enrolment_id, requirement_id, seq",
    "enrolment_history": "SELECT enrolment_id, seq, status, previous_status, reason,"
    " requirement_id, event_id, event_type, decided_at, recorded_at FROM enrolment_history"
    " ORDER BY enrolment_id, seq",
    "assignments": "SELECT enrolment_id, requirement_id, user_id, idempotency_key, status,"
    " assignment_id FROM assignments ORDER BY idempotency_key",
    "certificates": "SELECT id, enrolment_id, status, issued_at, completion_event_id, revoked_at"
    " FROM certificates ORDER BY id",
    "outbox": "SELECT topic, event_id, published_at IS NOT NULL AS published FROM outbox"
    " ORDER BY event_id",
    "inbox": "SELECT consumer, event_id FROM inbox ORDER BY consumer, event_id",
    "facts": "SELECT (SELECT count(*) FROM submissions) AS submissions,"
    " (SELECT count(*) FROM submission_scores) AS scores",
}


@dataclass(frozen=True)
class LedgerState:
    """The rows a run left behind, by table (see QUERIES)."""

    rows: dict[str, list[asyncpg.Record]]

    def __getitem__(self, table: str) -> list[asyncpg.Record]:
        return self.rows[table]

    @property
    def submissions(self) -> int:
        return int(self.rows["facts"][0]["submissions"])

    @property
    def score_versions(self) -> int:
        return int(self.rows["facts"][0]["scores"])

    def inbox(self, consumer: str) -> list[uuid.UUID]:
        """The event ids `consumer` claimed."""
        return [r["event_id"] for r in self.rows["inbox"] if r["consumer"] == consumer]

    def completions(self) -> Counter[uuid.UUID]:
        """How many times each enrolment completed (history entries into `completed`
        from `in_progress`)."""
        return Counter(
            r["enrolment_id"]
            for r in self.rows["enrolment_history"]
            if r["status"] == "completed" and r["previous_status"] == "in_progress"
        )


async def read_ledger(admin_url: str) -> LedgerState:
    """Read every table of QUERIES in one repeatable-read snapshot."""
    conn = await asyncpg.connect(admin_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = {table: await conn.fetch(query) for table, query in QUERIES.items()}
    finally:
        await conn.close()
    return LedgerState(rows)


def canonical_state(state: LedgerState) -> Canonical:
    """The order-independent end state, in the oracle's canonical form."""
    progress: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
    for r in state["progress"]:
        progress[r["enrolment_id"]][str(r["requirement_id"])] = requirement_row(
            r["status"],
            r["attempt_count"],
            r["submission_id"],
            r["score_version"],
            r["score"],
            r["passed"],
            r["completed_at"],
        )
    assigned: dict[uuid.UUID, list[str]] = defaultdict(list)
    for r in state["assignments"]:
        assigned[r["enrolment_id"]].append(str(r["requirement_id"]))
    live = Counter(r["enrolment_id"] for r in state["certificates"] if r["status"] != "revoked")
    return {
        str(e["id"]): {
            "status": e["status"],
            "completed_at": stamp(e["completed_at"]),
            "requirements": progress[e["id"]],
            "assigned": sorted(assigned[e["id"]]),
            "live_certificates": live[e["id"]],
        }
        for e in state["enrolments"]
    }


def ledger_hash(state: LedgerState) -> str:
    """A hash of the whole ledger, decision history included (not the inbox, nor
    when rows were written)."""
    tables = [t for t in QUERIES if t not in ("inbox", "facts")]
    return digest(
        {t: [[v for k, v in r.items() if k != "recorded_at"] for r in state[t]] for t in tables}
    )


def invariant_violations(state: LedgerState) -> list[str]:
    """What no fault may leave behind: partial or inconsistent rows."""
    return [
        *_progress_history_violations(state),
        *_enrolment_history_violations(state),
        *_assignment_violations(state),
        *_certificate_violations(state),
        *[
            f"outbox event {r['event_id']} never published"
            for r in state["outbox"]
            if not r["published"]
        ],
    ]


def _progress_history_violations(state: LedgerState) -> list[str]:
    history: dict[tuple[uuid.UUID, uuid.UUID], list[asyncpg.Record]] = defaultdict(list)
    for h in state["progress_history"]:
        history[(h["enrolment_id"], h["requirement_id"])].append(h)
    found = []
    fields = ("status", "submission_id", "score_version", "score", "passed", "attempt_count")
    for row in state["progress"]:
        key = (row["enrolment_id"], row["requirement_id"])
        entries = history.pop(key, [])
        where = f"progress {key[0]}/{key[1]}"
        found.extend(_chain_violations(where, entries, "pending"))
        if row["decision_seq"] != len(entries):
            found.append(f"{where}: decision_seq {row['decision_seq']} of {len(entries)}")
        if entries and tuple(entries[-1][f] for f in fields) != tuple(row[f] for f in fields):
            found.append(f"{where}: row differs from its last history entry")
    found.extend(f"history without a progress row: {k}" for k in history)
    return found


def _chain_violations(where: str, entries: list[asyncpg.Record], first: str) -> list[str]:
    """A history must number its entries 1, 2, ... and each entry must start from the
    status the one before it (or `first`) ended in."""
    found = []
    if [h["seq"] for h in entries] != list(range(1, len(entries) + 1)):
        found.append(f"{where}: history seqs {[h['seq'] for h in entries]}")
    previous = first
    for h in entries:
        if h["previous_status"] != previous:
            found.append(f"{where}: seq {h['seq']} follows {previous}, says {h['previous_status']}")
        previous = h["status"]
    return found


def _enrolment_history_violations(state: LedgerState) -> list[str]:
    history: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
    for h in state["enrolment_history"]:
        history[h["enrolment_id"]].append(h)
    found = []
    with_progress = {r["enrolment_id"] for r in state["progress"]}
    for enrolment in state["enrolments"]:
        entries = history.pop(enrolment["id"], [])
        where = f"enrolment {enrolment['id']}"
        if enrolment["id"] not in with_progress:
            found.append(f"{where}: no progress rows")
        found.extend(_chain_violations(where, entries, "in_progress"))
        previous = entries[-1]["status"] if entries else "in_progress"
        if previous != enrolment["status"]:
            found.append(f"{where}: status {enrolment['status']}, history ends {previous}")
    found.extend(f"history without an enrolment: {k}" for k in history)
    return found


def _assignment_violations(state: LedgerState) -> list[str]:
    found = [
        f"assignment {r['idempotency_key']} still {r['status']}"
        for r in state["assignments"]
        if r["status"] != "created"
    ]
    per_requirement = Counter(
        (r["enrolment_id"], r["requirement_id"]) for r in state["assignments"]
    )
    found.extend(f"{n} assignments for {k}" for k, n in per_requirement.items() if n > 1)
    return found


def _certificate_violations(state: LedgerState) -> list[str]:
    live = Counter(r["enrolment_id"] for r in state["certificates"] if r["status"] != "revoked")
    per_completion = Counter(r["completion_event_id"] for r in state["certificates"])
    return [f"{n} live certificates for enrolment {e}" for e, n in live.items() if n > 1] + [
        f"{n} certificates for completion {c}" for c, n in per_completion.items() if n > 1
    ]
