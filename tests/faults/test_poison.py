"""Scenario 8 — poison messages inside batches of valid ones, through the running
orchestrator: every poison message lands in `<topic>.dlq` exactly once with the
original record and the x-dlq-* context, every valid message (of the same tenant or
another, before or after the poison in the same batch) takes effect exactly once,
nothing of a dead-lettered message is left behind, the partitions keep moving (a
valid sentinel ends every partition) and the lag returns to 0. Then the unknown
tenant is registered and `programmes dlq replay` applies its message exactly once.

Everything is sent before the orchestrator starts, so its first fetches are large
mixed batches (the set-based batch path, and its per-message fallback, both run).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import hypothesis
import pytest
from hypothesis import strategies as st

from shared.db.uow import TenantUnitOfWork
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.cli import ok
from tests.support.figures import figure
from tests.support.fleet import create_fleet_topics, delivery_engine
from tests.support.kafka import drained
from tests.support.orchestration import (
    all_records,
    consumed_topics,
    orchestrator,
    orchestrator_group,
)
from tests.support.poison import (
    PROBE,
    Tenants,
    check_oracle,
    dead_letters,
    deeply_nested,
    hand_written,
    letters_by_probe,
    read_state,
    send_mixed,
    send_placed,
    sentinels,
    submission,
)
from tests.support.poison_strategies import mixed_batch
from tests.support.programmes import publish_sample
from tests.support.seed import seed_enrolment, seed_programme

SEED = 8
# Generated batches per run (each ~1 s on the shared stack); raise it locally, e.g.
# FAULTS_POISON_EXAMPLES=200, for a longer hunt.
EXAMPLES = int(os.environ.get("FAULTS_POISON_EXAMPLES", "5"))
VICTIM_TABLES = (
    "enrolments",
    "progress",
    "progress_history",
    "submissions",
    "submission_scores",
    "assignments",
    "inbox",
    "outbox",
)


async def tenants(pool: asyncpg.Pool) -> Tenants:
    """Two sending tenants and a victim with rows of every kind."""
    a = await publish_sample(pool, prerequisites=False)
    b = await publish_sample(pool, prerequisites=False)
    victim = await seed_programme(pool)
    enrolment = await seed_enrolment(pool, victim)
    submission = uuid.uuid4()
    async with TenantUnitOfWork(pool, victim.tenant_id) as uow:
        await uow.connection.execute(
            "INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,"
            " submitted_at, event_id) VALUES (app_current_tenant(), $1, $2, $3, $4, now(), $5)",
            submission,
            uuid.uuid4(),
            uuid.uuid4(),
            victim.evaluation_id,
            uuid.uuid4(),
        )
        await uow.commit()
    return Tenants(a, b, victim.tenant_id, enrolment, submission, victim.programme_id)


async def snapshot(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, list[str]]:
    """Every row the victim has in the tables a message could reach."""
    async with TenantUnitOfWork(pool, tenant) as uow:
        return {
            table: sorted(
                repr(dict(r)) for r in await uow.connection.fetch(f"SELECT * FROM {table}")
            )
            for table in VICTIM_TABLES
        }


async def test_poison_inside_batches_is_dead_lettered_and_every_valid_message_applies_once(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    t = await tenants(pool)
    probes = hand_written(t)
    await create_fleet_topics(settings)
    sent = await send_mixed(settings, probes, random.Random(SEED), sentinels([t.a, t.b]))
    victim_before = await snapshot(pool, t.victim_id)
    bootstrap = settings.kafka_bootstrap_servers
    group = orchestrator_group(settings)
    everyone = [t.a.tenant_id, t.b.tenant_id, t.unknown]
    async with delivery_engine() as engine, orchestrator(settings, engine.port):
        started = time.monotonic()
        await drained(bootstrap, group, consumed_topics(settings), within=90)
        drain_s = time.monotonic() - started
        letters = await dead_letters(settings)
        verdict = await check_oracle(pool, settings, sent, everyone, group, letters)
        assert await snapshot(pool, t.victim_id) == victim_before

        # The fix: the unknown tenant is registered; replaying the dead letters of
        # submission.created applies its message once, and only its message.
        states = {tenant: await read_state(pool, tenant) for tenant in everyone[:2]}
        await ok(settings, "tenant", "set", "--tenant", t.unknown)
        replay = await ok(
            settings, "dlq", "replay", "--topic", "submission.created", "--execute", "--json"
        )
        replayed = [d for d in replay.json()["dead_letters"] if d["outcome"] == "replayed"]
        await drained(bootstrap, group, consumed_topics(settings), within=60)
        source = topic_for("submission.created", settings.topic_prefix)
        after = letters_by_probe(await all_records(bootstrap, dead_letter_topic(source)))
        fixed = await read_state(pool, t.unknown)
    [unknown] = [s.probe for s in sent if s.probe.name == "unknown-tenant"]
    assert unknown.value is not None
    event = _event_of(unknown.value)
    assert fixed.submissions == {uuid.UUID(event["data"]["submission_id"])}
    assert fixed.inbox == Counter({uuid.UUID(event["id"]): 1})
    for tenant, state in states.items():
        assert await read_state(pool, tenant) == state  # nothing applied twice
    still_poison = {
        name: letters for name, letters in after.items() if name != "unknown-tenant"
    }  # dead-lettered again by the replay, each exactly once more
    assert {name: len(letters) for name, letters in still_poison.items()} == {
        name: 2 for name in still_poison
    }
    assert len(after["unknown-tenant"]) == 1
    assert len(replayed) == len(after)
    figure(
        "8-poison",
        messages=len(sent),
        applied=len(verdict.applied),
        dead_lettered=sum(verdict.dead_lettered.values()),
        error_classes=dict(sorted(verdict.dead_lettered.items())),
        drain_s=round(drain_s, 1),
        replayed=len(replayed),
        applied_by_replay=1,
    )


def _event_of(value: bytes) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(value)
    return event


@pytest.fixture
async def running_orchestrator(settings: Settings) -> AsyncIterator[Settings]:
    """The orchestrator (and the reference delivery engine), for a whole test."""
    await create_fleet_topics(settings)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        yield running


@dataclass
class Runs:
    """Examples run so far by the property test below (for its figure)."""

    examples: int = 0
    messages: int = 0
    dead_lettered: int = 0


RUNS = Runs()


@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate],
    suppress_health_check=[
        hypothesis.HealthCheck.function_scoped_fixture,
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
    ],
)
@hypothesis.given(data=st.data())
async def test_generated_poison_among_valid_submissions(
    settings: Settings,
    pool: asyncpg.Pool,
    running_orchestrator: Settings,
    data: st.DataObject,
) -> None:
    a = await publish_sample(pool, prerequisites=False)
    b = await publish_sample(pool, prerequisites=False)
    prefix = f"h{uuid.uuid4().hex[:8]}"
    probes = data.draw(mixed_batch((a.tenant_id, b.tenant_id), prefix), label="probes")
    rng = data.draw(st.randoms(use_true_random=False), label="placement")
    last = {
        ("submission.created", p): submission(a if p % 2 else b, f"{prefix}-sentinel-{p}")
        for p in range(3)
    }
    sent = await send_mixed(settings, probes, rng, last)
    group = orchestrator_group(settings)
    await drained(settings.kafka_bootstrap_servers, group, consumed_topics(settings), within=60)
    letters = [
        letter
        for letter in await dead_letters(settings)
        if dict(letter.headers).get(PROBE, b"").decode().startswith(prefix)
    ]
    verdict = await check_oracle(pool, settings, sent, [a.tenant_id, b.tenant_id], group, letters)
    RUNS.examples += 1
    RUNS.messages += len(sent)
    RUNS.dead_lettered += sum(verdict.dead_lettered.values())
    figure("8-poison-generated", **vars(RUNS))


async def test_a_deeply_nested_message_does_not_stall_its_partition(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Found by this tier (fixed): decode_event's classifier re-parses the value with
    json.loads, which raises RecursionError (not an EventDecodeError) on JSON nested
    deeper than Python's recursion limit. The batch path of the consumer pipeline
    decodes outside its error handling, so the error escapes the batch, faststream
    rewinds it (NACK_ON_ERROR) and redelivers it forever: the partition stalls and
    every poison message before it in the batch is dead-lettered again each round."""
    sample = await publish_sample(pool, prerequisites=False)
    probes = [
        submission(sample, "before"),
        deeply_nested(sample.tenant_id),
        submission(sample, "after"),
    ]
    await create_fleet_topics(settings)
    sent = await send_placed(settings, [(probe, 0) for probe in probes])
    group = orchestrator_group(settings)
    async with delivery_engine() as engine, orchestrator(settings, engine.port):
        await drained(settings.kafka_bootstrap_servers, group, consumed_topics(settings), within=15)
        letters = await dead_letters(settings)
        await check_oracle(pool, settings, sent, [sample.tenant_id], group, letters)
