"""Poison messages among valid ones, for the orchestrator's consumed topics: what
was sent (each record tagged with an `x-probe` header naming it), what each must
end as (applied, dead-lettered, or either but exactly one), and the oracle check of
the database, the dead-letter topics and the source records against that.

Hand-written probes are here; the hypothesis strategies are in
tests/support/poison_strategies.py.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.messaging import dead_letters as dl
from shared.messaging.clients import connected
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.events import enrolment_created, score_remediated, submission_created
from tests.support.orchestration import all_records

PROBE = "x-probe"
CONSUMED = ("enrolment.created", "submission.created", "score.remediated")
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
Outcome = Literal["applied", "dead_lettered", "either"]


@dataclass(frozen=True)
class Effect:
    """What a valid message leaves in its tenant's rows."""

    kind: Literal["enrolment", "submission", "score"]
    id: uuid.UUID  # the enrolment or submission
    event_id: uuid.UUID
    version: int = 1  # score version
    display_name: str | None = None  # enrolments


@dataclass(frozen=True)
class Probe:
    """One record to send and what must become of it."""

    name: str
    event_type: str
    value: bytes | None
    expect: Outcome
    tenant: uuid.UUID | None = None  # whose rows show the effect
    effect: Effect | None = None
    error_class: str | None = None  # the x-dlq-error-class, when the contract names it
    key: bytes = b"k"


@dataclass
class Tenants:
    """Two tenants sending (a, b), a victim whose rows others try to reach, and a
    tenant nobody registered yet."""

    a: Any  # tests.support.programmes.Sample
    b: Any
    victim_id: uuid.UUID
    victim_enrolment: uuid.UUID
    victim_submission: uuid.UUID
    victim_programme: uuid.UUID
    unknown: uuid.UUID = field(default_factory=uuid.uuid4)


def body(event: CloudEvent[Any]) -> dict[str, Any]:
    """An event as the JSON object sent."""
    return event.to_json_dict()


def encode(obj: Any) -> bytes:
    """JSON as a (possibly non-conforming) producer would write it: NaN allowed."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def enrolment(sample: Any, name: str, display_name: str | None = "Ada Lovelace") -> Probe:
    """A valid enrolment of `sample`'s tenant."""
    event = enrolment_created(
        sample.tenant_id, sample.programme_id, enrolled_at=NOW, display_name=display_name
    )
    effect = Effect("enrolment", event.data.enrolment_id, event.id, display_name=display_name)
    return Probe(name, event.type, event.to_bytes(), "applied", sample.tenant_id, effect)


def submission(
    sample: Any, name: str, *, score: float | None = 90.0, passed: bool | None = None
) -> Probe:
    """A valid submission (for an assignment this system did not make: recorded, ignored)."""
    event = submission_event(sample.tenant_id, score=score, passed=passed)
    effect = Effect("submission", event.data.submission_id, event.id)
    return Probe(name, event.type, event.to_bytes(), "applied", sample.tenant_id, effect)


def submission_event(
    tenant: uuid.UUID, *, score: float | None = 90.0, passed: bool | None = None
) -> CloudEvent[Any]:
    return submission_created(
        tenant,
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        evaluation_id=uuid.uuid4(),
        submitted_at=NOW,
        score=score,
        passed=passed,
    )


def remediation(sample: Any, name: str, submission_id: uuid.UUID, version: int = 2) -> Probe:
    """A valid correction (its submission may not be there yet: recorded, deferred)."""
    event = score_remediated(
        sample.tenant_id,
        submission_id=submission_id,
        score_version=version,
        remediated_at=NOW + timedelta(days=1),
        score=55.5,
    )
    effect = Effect("score", submission_id, event.id, version=version)
    return Probe(name, event.type, event.to_bytes(), "applied", sample.tenant_id, effect)


def poison(
    name: str, event_type: str, value: bytes | None, error_class: str | None = None
) -> Probe:
    return Probe(name, event_type, value, "dead_lettered", error_class=error_class)


def mutated(event: CloudEvent[Any], path: str, value: Any, *, delete: bool = False) -> bytes:
    """The event's JSON with one attribute (`data.score`, `time`, ...) replaced or removed."""
    obj = body(event)
    *parents, leaf = path.split(".")
    target = obj
    for part in parents:
        target = target[part]
    if delete:
        del target[leaf]
    else:
        target[leaf] = value
    return encode(obj)


def raw_number(event: CloudEvent[Any], path: str, literal: str) -> bytes:
    """The event's JSON with a number written literally (1e400, NaN, a 40-digit int)."""
    marker = "__number__"
    return mutated(event, path, marker).replace(f'"{marker}"'.encode(), literal.encode())


def hand_written(t: Tenants) -> list[Probe]:
    """Every kind of poison of the contract, and valid edge cases, for all three topics."""
    a, b = t.a, t.b
    sub = submission_event(a.tenant_id)
    sub_t = "submission.created"
    probes = [
        # Not JSON, empty, not a CloudEvent, another event type.
        poison("not-json", sub_t, b"\xffnot json", "InvalidJson"),
        poison("truncated-json", sub_t, sub.to_bytes()[:40], "InvalidJson"),
        poison("bad-utf8", sub_t, sub.to_bytes().replace(b"/evalium", b"/\xc3\x28"), "InvalidJson"),
        # Surrogates encoded in UTF-8 bytes are not UTF-8; the class is not pinned:
        # json.loads(bytes) accepts them ('surrogatepass'), so they are classified
        # SchemaValidationError ("Invalid JSON: invalid unicode code point").
        poison("utf8-surrogate", sub_t, sub.to_bytes().replace(b"/evalium", b"/\xed\xa0\x80")),
        poison("empty", sub_t, b"", "EmptyMessage"),
        poison("tombstone", sub_t, None, "EmptyMessage"),
        poison("json-object", sub_t, b'{"hello":"world"}', "NotACloudEvent"),
        poison("json-array", sub_t, b"[1,2,3]", "NotACloudEvent"),
        poison("json-string", sub_t, b'"submission.created"', "NotACloudEvent"),
        poison("json-null", sub_t, b"null", "NotACloudEvent"),
        poison("json-number", sub_t, b"42", "NotACloudEvent"),
        poison(
            "other-type",
            sub_t,
            enrolment_created(a.tenant_id, a.programme_id, enrolled_at=NOW).to_bytes(),
            "UnexpectedEventType",
        ),
        # Schema-invalid: missing, wrong types, out of range, extreme numbers.
        poison("no-submission-id", sub_t, mutated(sub, "data.submission_id", None, delete=True)),
        poison("bad-uuid", sub_t, mutated(sub, "data.submission_id", "not-a-uuid")),
        poison("int-uuid", sub_t, mutated(sub, "data.assignment_id", 123)),
        poison("bad-tenant-id", sub_t, mutated(sub, "tenantid", "tenant-1")),
        poison("data-null", sub_t, mutated(sub, "data", None)),
        poison("spec-0.3", sub_t, mutated(sub, "specversion", "0.3")),
        poison("schema-version-2", sub_t, mutated(sub, "dataschemaversion", 2)),
        poison("naive-time", sub_t, mutated(sub, "data.submitted_at", "2026-06-01T09:00:00")),
        poison("impossible-time", sub_t, mutated(sub, "time", "2026-13-45T99:99:99Z")),
        poison("score-as-string", sub_t, mutated(sub, "data.score", "90")),
        poison("score-as-bool", sub_t, mutated(sub, "data.score", True)),
        poison("passed-as-string", sub_t, mutated(sub, "data.passed", "true")),
        poison("passed-as-int", sub_t, mutated(sub, "data.passed", 1)),
        poison("version-as-string", sub_t, mutated(sub, "data.score_version", "1")),
        poison("version-as-float", sub_t, mutated(sub, "data.score_version", 1.0)),
        poison("version-zero", sub_t, mutated(sub, "data.score_version", 0)),
        poison("score-101", sub_t, mutated(sub, "data.score", 101)),
        poison("score-negative", sub_t, mutated(sub, "data.score", -0.001)),
        poison("score-just-over", sub_t, mutated(sub, "data.score", 100.00000000000001)),
        poison("score-1e308", sub_t, mutated(sub, "data.score", 1e308)),
        poison("score-1e400", sub_t, raw_number(sub, "data.score", "1e400")),
        poison("score-nan", sub_t, raw_number(sub, "data.score", "NaN")),
        poison("score-infinity", sub_t, raw_number(sub, "data.score", "Infinity")),
        poison("score--infinity", sub_t, raw_number(sub, "data.score", "-Infinity")),
        poison("version-huge", sub_t, raw_number(sub, "data.score_version", "9" * 40)),
        poison("version-2^63", sub_t, raw_number(sub, "data.score_version", str(2**63))),
        poison("source-too-long", sub_t, mutated(sub, "source", "s" * 1001)),
        # Oversized: a valid event padded past PROGRAMMES_MAX_EVENT_BYTES.
        poison(
            "oversized",
            sub_t,
            mutated(sub, "data.padding", "x" * 300_000),
            "OversizedMessage",
        ),
        # Unknown tenant; another tenant's submission.
        Probe(
            "unknown-tenant",
            sub_t,
            submission_event(t.unknown).to_bytes(),
            "dead_lettered",
            error_class="UnknownTenant",
        ),
        poison(
            "foreign-submission",
            sub_t,
            mutated(submission_event(b.tenant_id), "data.submission_id", str(t.victim_submission)),
            "CrossTenantReference",
        ),
        # Valid edge cases: applied.
        submission(a, "score-zero", score=0.0),
        submission(b, "score-hundred", score=100.0),
        submission(a, "score-denormal", score=5e-324),
        submission(b, "score-rounding", score=99.9996),
        submission(a, "pass-fail-only", score=None, passed=False),
        _with_extras(submission(b, "unknown-fields")),
        _with_source(submission(a, "unicode-source"), "/évalium/délivery/🧪/\u202ertl"),
    ]
    probes += _enrolments(t)
    probes += _remediations(t, [p for p in probes if p.effect and p.effect.kind == "submission"])
    return probes


def deeply_nested(tenant: uuid.UUID, depth: int = 5000) -> Probe:
    """A valid submission with an ignored extra field nested `depth` arrays deep
    (past the JSON parsers' recursion limits)."""
    event = submission_event(tenant)
    nested = raw_number(event, "data.extra", "[" * depth + "]" * depth)
    return poison("deeply-nested", event.type, nested)


def _enrolments(t: Tenants) -> list[Probe]:
    a, b = t.a, t.b
    enr = enrolment_created(a.tenant_id, a.programme_id, enrolled_at=NOW)
    e_t = "enrolment.created"
    names = {
        "emoji-200": "🧪" * 200,
        "max-200": "x" * 200,
        "rtl": "שלום עולם",
        "rtl-override": "\u202eevil\u202c",
        "combining": "e\u0301\u0301\u0301",
        "zero-width": "a\u200b\u200d\u2060b",
        "cjk": "大塚 Ōtsuka",
        "bom": "\ufeffBOM",
        "supplementary": "\U0001d54f\U00010348",
    }
    probes = [
        enrolment(a if i % 2 else b, f"name-{key}", name)
        for i, (key, name) in enumerate(names.items())
    ]
    probes += [
        enrolment(a, "no-name", None),
        poison("name-too-long", e_t, mutated(enr, "data.user_display_name", "x" * 201)),
        poison("name-empty", e_t, mutated(enr, "data.user_display_name", "")),
        poison("name-as-list", e_t, mutated(enr, "data.user_display_name", ["Ada"])),
        poison(
            "enrolment-unknown-programme",
            e_t,
            mutated(enr, "data.program_id", str(uuid.uuid4())),
            "ReferenceNotFound",
        ),
        poison(
            "enrolment-foreign-programme",
            e_t,
            mutated(
                enrolment_created(b.tenant_id, b.programme_id, enrolled_at=NOW),
                "data.program_id",
                str(t.victim_programme),
            ),
            "CrossTenantReference",
        ),
        poison(
            "enrolment-foreign-id",
            e_t,
            mutated(
                enrolment_created(b.tenant_id, b.programme_id, enrolled_at=NOW),
                "data.enrolment_id",
                str(t.victim_enrolment),
            ),
            "CrossTenantReference",
        ),
        poison(
            "enrolment-unknown-renewal",
            e_t,
            mutated(enr, "data.renewal_of_enrolment_id", str(uuid.uuid4())),
            "ReferenceNotFound",
        ),
        poison(
            "enrolment-unknown-tenant",
            e_t,
            mutated(enr, "tenantid", str(t.unknown)),
            "UnknownTenant",
        ),
    ]
    # PostgreSQL text cannot hold NUL, and a lone surrogate is no character: the
    # contract says nothing, so either outcome is right, exactly once.
    for key, escaped in (("nul", "\\u0000"), ("lone-surrogate", "\\ud800")):
        event = enrolment_created(a.tenant_id, a.programme_id, enrolled_at=NOW, display_name="@@")
        value = event.to_bytes().replace(b'"@@"', f'"Ada{escaped}"'.encode())
        probes.append(
            Probe(
                f"name-{key}",
                e_t,
                value,
                "either",
                a.tenant_id,
                Effect("enrolment", event.data.enrolment_id, event.id, display_name=None),
            )
        )
    return probes


def _remediations(t: Tenants, submissions: Sequence[Probe]) -> list[Probe]:
    a, b = t.a, t.b
    r_t = "score.remediated"
    mine = [p for p in submissions if p.tenant == a.tenant_id]
    fix = score_remediated(
        a.tenant_id,
        submission_id=uuid.uuid4(),
        score_version=2,
        remediated_at=NOW,
        score=10.0,
    )
    probes = [remediation(a, f"remediation-{n}", p.effect.id) for n, p in enumerate(mine)
              if p.effect]  # fmt: skip
    probes += [
        remediation(b, "remediation-before-its-submission", uuid.uuid4(), version=3),
        poison("remediation-version-1", r_t, mutated(fix, "data.score_version", 1)),
        poison("remediation-no-batch", r_t, mutated(fix, "data.correction_batch_id", None)),
        poison("remediation-garbage", r_t, b"\x00\x01\x02", "InvalidJson"),
        poison(
            "remediation-foreign",
            r_t,
            score_remediated(
                b.tenant_id,
                submission_id=t.victim_submission,
                score_version=2,
                remediated_at=NOW,
                score=100.0,
            ).to_bytes(),
            "CrossTenantReference",
        ),
    ]
    return probes


def _with_extras(probe: Probe) -> Probe:
    assert probe.value is not None
    obj = json.loads(probe.value)
    obj["x_unknown"] = {"nested": [1, 2, {"deep": None}]}
    obj["data"]["x_future_field"] = "ignored"
    return _replace_value(probe, encode(obj))


def _with_source(probe: Probe, source: str) -> Probe:
    assert probe.value is not None
    obj = json.loads(probe.value)
    obj["source"] = source
    return _replace_value(probe, encode(obj))


def _replace_value(probe: Probe, value: bytes) -> Probe:
    return Probe(
        probe.name,
        probe.event_type,
        value,
        probe.expect,
        probe.tenant,
        probe.effect,
        probe.error_class,
        probe.key,
    )


# -- sending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """Where a probe was written."""

    probe: Probe
    topic: str
    partition: int


async def send_mixed(
    settings: Settings,
    probes: Sequence[Probe],
    rng: random.Random,
    sentinels: dict[tuple[str, int], Probe],
    partitions: int = 3,
) -> list[Sent]:
    """Send the probes shuffled over every partition of their topics, then one valid
    sentinel per (topic, partition) last: poison sits inside batches of valid messages
    of the same and other tenants, and something valid always follows it."""
    order = list(probes)
    rng.shuffle(order)
    placed = [(p, rng.randrange(partitions)) for p in order]
    placed += [(p, partition) for (_, partition), p in sentinels.items()]
    return await send_placed(settings, placed)


async def send_placed(settings: Settings, placed: Sequence[tuple[Probe, int]]) -> list[Sent]:
    """Send each probe to its partition, in this order, tagged with its name."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        max_request_size=2 * 1024 * 1024,
        linger_ms=5,
    )
    sent = []
    async with connected(producer):
        futures = []
        for probe, partition in placed:
            topic = topic_for(probe.event_type, settings.topic_prefix)
            futures.append(
                await producer.send(
                    topic,
                    probe.value,
                    key=probe.key,
                    partition=partition,
                    headers=[(PROBE, probe.name.encode())],
                )
            )
            sent.append(Sent(probe, topic, partition))
        for future in futures:
            await future
    return sent


def sentinels(samples: Sequence[Any], partitions: int = 3) -> dict[tuple[str, int], Probe]:
    """One valid message per (topic, partition), sent after everything else."""
    found: dict[tuple[str, int], Probe] = {}
    for event_type in CONSUMED:
        for partition in range(partitions):
            sample = samples[partition % len(samples)]
            name = f"sentinel-{event_type}-{partition}-{uuid.uuid4().hex[:6]}"
            if event_type == "enrolment.created":
                probe = enrolment(sample, name)
            elif event_type == "submission.created":
                probe = submission(sample, name)
            else:
                probe = remediation(sample, name, uuid.uuid4())
            found[(event_type, partition)] = probe
    return found


# -- the oracle ------------------------------------------------------------------------


@dataclass
class State:
    """A tenant's rows that the probes can touch."""

    enrolments: dict[uuid.UUID, str | None]
    progress: Counter[uuid.UUID]
    submissions: set[uuid.UUID]
    scores: set[tuple[uuid.UUID, int]]
    inbox: Counter[uuid.UUID]


async def read_state(pool: asyncpg.Pool, tenant: uuid.UUID) -> State:
    async with TenantUnitOfWork(pool, tenant) as uow:
        conn = uow.connection
        enrolments = {
            r["id"]: r["user_display_name"]
            for r in await conn.fetch("SELECT id, user_display_name FROM enrolments")
        }
        progress = Counter(r["enrolment_id"] for r in await conn.fetch("SELECT * FROM progress"))
        submissions = {r["id"] for r in await conn.fetch("SELECT id FROM submissions")}
        scores = {
            (r["submission_id"], r["score_version"])
            for r in await conn.fetch("SELECT submission_id, score_version FROM submission_scores")
        }
        inbox = Counter(
            r["event_id"]
            for r in await conn.fetch("SELECT event_id FROM inbox WHERE consumer = 'orchestrator'")
        )
    return State(enrolments, progress, submissions, scores, inbox)


def letters_by_probe(
    letters: Iterable[ConsumerRecord[bytes, bytes]],
) -> dict[str, list[ConsumerRecord[bytes, bytes]]]:
    found: dict[str, list[ConsumerRecord[bytes, bytes]]] = {}
    for letter in letters:
        name = dict(letter.headers).get(PROBE, b"?").decode()
        found.setdefault(name, []).append(letter)
    return found


async def dead_letters(settings: Settings) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the consumed topics' dead-letter topics."""
    found = []
    for event_type in CONSUMED:
        topic = dead_letter_topic(topic_for(event_type, settings.topic_prefix))
        found += await all_records(settings.kafka_bootstrap_servers, topic)
    return found


async def source_records(settings: Settings) -> dict[tuple[str, int, int], Any]:
    """The consumed topics' records by (topic, partition, offset)."""
    found = {}
    for event_type in CONSUMED:
        topic = topic_for(event_type, settings.topic_prefix)
        for record in await all_records(settings.kafka_bootstrap_servers, topic):
            found[(topic, record.partition, record.offset)] = record
    return found


def check_letter(
    letter: ConsumerRecord[bytes, bytes],
    sent: Sent,
    sources: dict[tuple[str, int, int], Any],
    group: str,
) -> str:
    """The dead letter carries the original and the contract's context; returns its
    error class."""
    headers = dict(letter.headers)
    probe = sent.probe
    assert letter.value == probe.value, probe.name
    assert letter.key == probe.key, probe.name
    assert headers[PROBE] == probe.name.encode()  # original headers kept
    error_class = str(headers[dl.ERROR_CLASS].decode())
    if probe.error_class is not None:
        assert error_class == probe.error_class, (probe.name, headers[dl.ERROR_MESSAGE])
    message = headers[dl.ERROR_MESSAGE].decode()
    assert message.strip() and "\n" not in message, (probe.name, message)
    assert headers[dl.SOURCE_TOPIC].decode() == sent.topic
    assert headers[dl.CONSUMER_GROUP].decode() == group
    failed_at = datetime.fromisoformat(headers[dl.FAILED_AT].decode())
    assert failed_at.tzinfo is not None
    where = (sent.topic, int(headers[dl.SOURCE_PARTITION]), int(headers[dl.SOURCE_OFFSET]))
    assert where[1] == sent.partition, probe.name
    original = sources[where]
    assert dict(original.headers)[PROBE] == probe.name.encode(), (probe.name, where)
    return error_class


@dataclass
class Verdict:
    """What became of each probe."""

    applied: list[str] = field(default_factory=list)
    dead_lettered: Counter[str] = field(default_factory=Counter)  # error class -> count


async def check_oracle(
    pool: asyncpg.Pool,
    settings: Settings,
    sent: Sequence[Sent],
    tenants: Sequence[uuid.UUID],
    group: str,
    letters: Sequence[ConsumerRecord[bytes, bytes]],
) -> Verdict:
    """Every probe ended as it must, exactly once; the tenants hold exactly the
    effects of the applied probes (nothing of a dead-lettered one, nothing twice)."""
    by_probe = letters_by_probe(letters)
    sources = await source_records(settings)
    states = {tenant: await read_state(pool, tenant) for tenant in tenants}
    verdict = Verdict()
    expected: dict[uuid.UUID, list[Effect]] = {tenant: [] for tenant in tenants}
    names = [s.probe.name for s in sent]
    assert len(set(names)) == len(names), "probe names must be unique"
    for item in sent:
        probe = item.probe
        got = by_probe.get(probe.name, [])
        assert len(got) <= 1, f"{probe.name} dead-lettered {len(got)} times"
        applied = (
            probe.effect is not None
            and probe.tenant in states
            and _present(states[probe.tenant], probe.effect)
        )
        if probe.expect == "applied":
            assert not got, (probe.name, dict(got[0].headers)[dl.ERROR_MESSAGE])
            assert applied, f"{probe.name}: effect missing"
        elif probe.expect == "dead_lettered":
            assert got, f"{probe.name}: not dead-lettered"
        else:
            assert bool(got) != applied, (
                f"{probe.name}: dead-lettered={bool(got)} applied={applied}"
            )
        if got:
            verdict.dead_lettered[check_letter(got[0], item, sources, group)] += 1
        if applied and probe.effect is not None and probe.tenant is not None:
            verdict.applied.append(probe.name)
            expected[probe.tenant].append(probe.effect)
    for tenant, effects in expected.items():
        assert_exactly(states[tenant], effects, tenant)
    unknown = set(by_probe) - set(names)
    assert not unknown, f"dead letters of messages never sent: {unknown}"
    return verdict


def _present(state: State, effect: Effect) -> bool:
    if effect.kind == "enrolment":
        return effect.id in state.enrolments
    if effect.kind == "submission":
        return effect.id in state.submissions and (effect.id, 1) in state.scores
    return (effect.id, effect.version) in state.scores


def assert_exactly(state: State, effects: Sequence[Effect], tenant: uuid.UUID) -> None:
    """The tenant's rows are exactly these effects: each once, nothing else."""
    enrolments = {e.id: e.display_name for e in effects if e.kind == "enrolment"}
    for enrolment_id, name in enrolments.items():
        if name is not None:
            assert state.enrolments[enrolment_id] == name, (tenant, enrolment_id)
    assert set(state.enrolments) == set(enrolments), tenant
    assert all(state.progress[e] == 3 for e in enrolments), state.progress
    assert state.submissions == {e.id for e in effects if e.kind == "submission"}, tenant
    scores = {(e.id, e.version) for e in effects if e.kind != "enrolment"}
    assert state.scores == scores, tenant
    assert state.inbox == Counter(e.event_id for e in effects), tenant
