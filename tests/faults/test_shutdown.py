"""Scenario 10 — graceful shutdown: SIGTERM reaches `programmes run orchestrator` (a
real process) while it works through a backlog, with a slow database so that a
batch is in flight. It must report not-ready while it drains, exit 0 within the
Deployment's grace period, leave its consumer group at once, and have committed
offsets only for messages it applied. A restarted process then finishes the rest:
the end state is exactly the oracle's, every message applied once.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from shared.db.uow import TenantUnitOfWork
from shared.messaging.clients import connected
from shared.settings import Settings
from tests.support.db_chaos import require_superuser
from tests.support.figures import figure
from tests.support.fleet import create_fleet_topics, delivery_engine
from tests.support.kafka import drained, eventually, lag
from tests.support.orchestration import (
    all_records,
    committed_offsets,
    consumed_topics,
    orchestrator_group,
)
from tests.support.poison import (
    PROBE,
    Probe,
    check_oracle,
    dead_letters,
    enrolment,
    send_mixed,
    sentinels,
    submission,
)
from tests.support.programmes import publish_sample
from tests.support.service_process import service_process
from tests.support.services import Services, with_database

DEPLOYMENT = Path(__file__).parents[2] / "deploy/kubernetes/base/orchestrator.yaml"
SUBMISSIONS = 900
ENROLMENTS = 30
ROW_DELAY = 0.01  # seconds per submission row: a batch of BATCH takes ~1.5 s
BATCH = "150"  # records per batch, so that a backlog outlasts the batch in flight


def grace_period() -> float:
    """terminationGracePeriodSeconds of the orchestrator's Deployment."""
    for document in yaml.safe_load_all(DEPLOYMENT.read_text()):
        if document and document.get("kind") == "Deployment":
            return float(document["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    raise AssertionError(f"no Deployment in {DEPLOYMENT}")


@contextlib.asynccontextmanager
async def slow_submissions(admin_url: str, delay: float) -> AsyncIterator[None]:
    """Every submission row written takes `delay` seconds longer (a slow disk)."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(
            "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN PERFORM pg_sleep({float(delay)}); RETURN NULL; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER slow_row AFTER INSERT ON submissions"
            " FOR EACH ROW EXECUTE FUNCTION slow_row()"
        )
        yield
    finally:
        await conn.execute("DROP TRIGGER IF EXISTS slow_row ON submissions")
        await conn.execute("DROP FUNCTION IF EXISTS slow_row()")
        await conn.close()


async def _members(bootstrap: str, group: str) -> tuple[str, int]:
    async with connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        [response] = await admin.describe_consumer_groups([group])
    [described] = response.to_object()["groups"]
    return str(described["state"]), len(described["members"])


async def _claimed(pool: asyncpg.Pool, tenants: Sequence[uuid.UUID]) -> set[str]:
    """Event ids the orchestrator has applied (its inbox), every tenant."""
    found: set[str] = set()
    for tenant in tenants:
        async with TenantUnitOfWork(pool, tenant) as uow:
            rows = await uow.connection.fetch(
                "SELECT event_id FROM inbox WHERE consumer = 'orchestrator'"
            )
        found |= {str(r["event_id"]) for r in rows}
    return found


async def test_sigterm_drains_commits_what_it_finished_and_a_restart_finishes_the_rest(
    services: Services, database: str, settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await require_superuser(services.admin_url)
    rng = random.Random(10)
    samples = [await publish_sample(pool, prerequisites=False) for _ in range(2)]
    tenants = [s.tenant_id for s in samples]
    probes: list[Probe] = [
        enrolment(samples[i % 2], f"enrolment-{i}") for i in range(ENROLMENTS)
    ] + [submission(samples[i % 2], f"submission-{i}") for i in range(SUBMISSIONS)]
    await create_fleet_topics(settings)
    bootstrap = settings.kafka_bootstrap_servers
    group = orchestrator_group(settings)
    topics = consumed_topics(settings)
    grace = grace_period()
    admin_url = with_database(services.admin_url, database)
    async with (
        delivery_engine() as engine,
        slow_submissions(admin_url, ROW_DELAY),
    ):
        engine_url = f"http://127.0.0.1:{engine.port}"
        async with service_process(
            "orchestrator",
            settings,
            tmp_path,
            ASSIGNMENT_SERVICE_URL=engine_url,
            PROGRAMMES_MAX_BATCH=BATCH,
        ) as first:
            await first.ready()

            async def joined() -> bool:
                """One member per subscriber, the group settled."""
                return await _members(bootstrap, group) == ("Stable", len(topics))

            await eventually(joined, within=60, interval=0.2)
            sent = await send_mixed(settings, probes, rng, sentinels(samples))

            async def working() -> bool:
                return len(await _claimed(pool, tenants)) >= 50

            await eventually(working, within=60)
            backlog = await lag(bootstrap, group, topics)
            assert backlog > 0, "nothing left in flight to interrupt"
            code, took = await first.terminate(grace)
            assert code == 0, first.tail()
        assert await _members(bootstrap, group) == ("Empty", 0)  # left, not timed out
        draining_seen = 503 in first.readiness
        assert draining_seen, first.readiness  # not ready while draining

        # Committed offsets cover only applied messages: nothing committed is lost.
        committed = await committed_offsets(bootstrap, group)
        applied = await _claimed(pool, tenants)
        committed_count = applied_beyond = 0
        for topic in topics:
            for record in await all_records(bootstrap, topic):
                event_id = _event_id(record.value)
                if record.offset < committed.get((topic, record.partition), 0):
                    committed_count += 1
                    name = dict(record.headers)[PROBE].decode()
                    assert event_id in applied, f"{name} committed but never applied"
                elif event_id in applied:
                    applied_beyond += 1  # finished but not committed: redelivered, deduplicated
        left = len(sent) - len(applied)
        assert left > 0

        async with service_process(
            "orchestrator", settings, tmp_path, ASSIGNMENT_SERVICE_URL=engine_url
        ) as second:
            await second.ready()
            await drained(bootstrap, group, topics, within=120)
            code2, took2 = await second.terminate(grace)
            assert code2 == 0, second.tail()
        letters = await dead_letters(settings)
    verdict = await check_oracle(pool, settings, sent, tenants, group, letters)
    assert not letters
    figure(
        "10-shutdown",
        messages=len(sent),
        lag_at_sigterm=backlog,
        exit_code=code,
        shutdown_s=round(took, 1),
        grace_s=grace,
        not_ready_while_draining=draining_seen,
        applied_before_exit=len(applied),
        committed=committed_count,
        applied_not_committed=applied_beyond,
        finished_by_restart=left,
        applied_once=len(verdict.applied),
        restart_shutdown_s=round(took2, 1),
        started_at=time.strftime("%H:%M:%S"),
    )


def _event_id(value: bytes | None) -> str:
    return str(json.loads(value or b"{}").get("id"))
