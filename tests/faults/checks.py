"""The checks every fault scenario ends with: the ledger equals the oracle's, every
event sent was processed once, nothing was doubled (assignments, completions,
certificates), nothing was dead-lettered, no partial rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import httpx

from shared.fleet import CERTIFIER, ORCHESTRATOR
from shared.messaging.topics import dead_letter_topic, topic_for
from tests.support.ledger_state import (
    LedgerState,
    canonical_state,
    invariant_violations,
    ledger_hash,
)
from tests.support.oracle import Expected, canonical, differences, digest
from tests.support.orchestration import all_records

if TYPE_CHECKING:
    from tests.faults.harness import FaultRun

OUTPUTS = ("enrolment.completed", "enrolment.reopened", "certificate.issued", "certificate.revoked")


async def problems(
    run: FaultRun, state: LedgerState, expected: dict[uuid.UUID, Expected]
) -> list[str]:
    """Everything wrong with the end state of `run` (empty: all good); fills its figures."""
    wanted, actual = canonical(expected), canonical_state(state)
    run.figures.state_hash = digest(actual)
    run.figures.ledger_hash = ledger_hash(state)
    found = [f"ledger differs from the oracle: {d}" for d in differences(wanted, actual)]
    for key in [k for k in wanted if wanted[k] != actual.get(k)][:3]:
        found.append(f"history of {key}: {_history(state, uuid.UUID(key))}")
    if digest(wanted) != run.figures.state_hash and not found:
        found.append("state hashes differ")  # pragma: no cover - differences() says where
    found += invariant_violations(state)
    found += _processed_once(run, state)
    found += await _outputs(run, state, expected)
    found += await _dead_letters(run)
    found += await _assignments(run, state)
    return found


def _history(state: LedgerState, enrolment_id: uuid.UUID) -> list[str]:
    """An enrolment's decisions, in order, for a failure message."""
    entries = [
        (h["recorded_at"], f"{h['requirement_id']}: {h['reason']} ({h['event_type']})")
        for h in state["progress_history"]
        if h["enrolment_id"] == enrolment_id
    ] + [
        (
            h["recorded_at"],
            f"{h['previous_status']}->{h['status']}: {h['reason']} ({h['event_type']})",
        )
        for h in state["enrolment_history"]
        if h["enrolment_id"] == enrolment_id
    ]
    return [text for _, text in sorted(entries)]


def _processed_once(run: FaultRun, state: LedgerState) -> list[str]:
    sent = run.feeder.event_ids
    found = []
    if len(sent) != run.workload.events or len(set(sent)) != len(sent):
        found.append(f"fed {len(set(sent))} distinct events of {run.workload.events} planned")
    missing = set(sent) - set(state.inbox(ORCHESTRATOR.name))
    if missing:
        found.append(f"{len(missing)} events never processed, e.g. {sorted(missing)[:3]}")
    if run.feeder.messages < run.figures.messages:
        found.append(f"{run.feeder.messages} records fed, {run.figures.messages} planned")
    planned = [s for e in run.workload.enrolments for subs in e.submissions.values() for s in subs]
    if state.submissions != len(planned):
        found.append(f"{state.submissions} submissions recorded, {len(planned)} sent")
    versions = sum(len(s.versions) for s in planned)
    if state.score_versions != versions:
        found.append(f"{state.score_versions} score versions recorded, {versions} sent")
    return found


async def output_event_ids(run: FaultRun) -> dict[str, dict[uuid.UUID, set[uuid.UUID]]]:
    """The produced events' ids by type and enrolment; records their figures."""
    ids: dict[str, dict[uuid.UUID, set[uuid.UUID]]] = {}
    topics = [topic_for(event_type, run.target.prefix) for event_type in OUTPUTS]
    every = await asyncio.gather(*(all_records(run.target.bootstrap, t) for t in topics))
    for event_type, fetched in zip(OUTPUTS, every, strict=True):
        by_enrolment: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        for record in fetched:
            event = json.loads(record.value)
            by_enrolment[uuid.UUID(event["data"]["enrolment_id"])].add(uuid.UUID(event["id"]))
        ids[event_type] = by_enrolment
    distinct = sorted(str(i) for by in ids.values() for v in by.values() for i in v)
    run.figures.output_duplicates = sum(len(f) for f in every) - len(distinct)
    run.figures.extra["output_event_ids"] = digest(distinct)
    return ids


async def _outputs(
    run: FaultRun, state: LedgerState, expected: dict[uuid.UUID, Expected]
) -> list[str]:
    """Produced events: one id per decision, whatever was redelivered or replayed."""
    ids = await output_event_ids(run)
    completed, completions = ids["enrolment.completed"], state.completions()
    run.figures.completed = sum(1 for e in expected.values() if e.complete)
    run.figures.certified = sum(1 for r in state["enrolments"] if r["status"] == "certified")
    run.figures.reopened = sum(len(v) for v in ids["enrolment.reopened"].values())
    found = []
    for enrolment_id, e in expected.items():
        count = len(completed.get(enrolment_id, ()))
        if count != completions[enrolment_id]:
            found.append(
                f"enrolment {enrolment_id}: {count} enrolment.completed ids,"
                f" {completions[enrolment_id]} completions in its history"
            )
        elif e.monotone and count != (1 if e.complete else 0):
            found.append(f"enrolment {enrolment_id}: {count} enrolment.completed ids")
    live = {r["enrolment_id"]: r for r in state["certificates"] if r["status"] != "revoked"}
    run.figures.extra["certificates_not_at_completion_time"] = sum(
        1
        for enrolment_id, e in expected.items()
        if enrolment_id in live and live[enrolment_id]["issued_at"] != e.completed_at
    )
    all_completions = {i for v in completed.values() for i in v}
    for certificate in state["certificates"]:
        if certificate["completion_event_id"] not in all_completions:
            found.append(f"certificate {certificate['id']} for an unknown completion")
    issued = sum(len(v) for v in ids["certificate.issued"].values())
    if issued != len(state["certificates"]):
        found.append(f"{len(state['certificates'])} certificates, {issued} issued event ids")
    return found


async def _dead_letters(run: FaultRun) -> list[str]:
    found = []
    consumed = (*ORCHESTRATOR.consumes, *CERTIFIER.consumes)
    topics = [dead_letter_topic(topic_for(t, run.target.prefix)) for t in consumed]
    every = await asyncio.gather(*(all_records(run.target.bootstrap, t) for t in topics))
    for topic, letters in zip(topics, every, strict=True):
        if letters:
            headers = dict(letters[0].headers)
            why = headers.get("x-dlq-error-class", b""), headers.get("x-dlq-error-message", b"")
            found.append(f"{len(letters)} dead letters on {topic}, first: {why!r}")
    return found


async def _assignments(run: FaultRun, state: LedgerState) -> list[str]:
    """One assignment per idempotency key and per (enrolment, requirement), in the
    delivery engine as in the ledger."""
    async with httpx.AsyncClient(base_url=run.engine_url, timeout=30) as client:
        made = (await client.get("/api/v1/assignments")).json()
    found = []
    per_requirement = Counter(
        (
            a["body"]["metadata"]["program_enrolment_id"],
            a["body"]["metadata"]["program_requirement_id"],
        )
        for a in made
    )
    found += [f"{n} engine assignments for {k}" for k, n in per_requirement.items() if n > 1]
    engine_ids = {a["idempotency_key"]: uuid.UUID(a["assignment_id"]) for a in made}
    ledger_ids = {r["idempotency_key"]: r["assignment_id"] for r in state["assignments"]}
    if engine_ids != ledger_ids:
        extra = set(engine_ids.items()) ^ set(ledger_ids.items())
        found.append(f"engine and ledger assignments differ on {len(extra)} keys")
    return found
