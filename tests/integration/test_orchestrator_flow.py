"""The orchestrator end to end: the real broker, the real database, the reference
delivery engine over HTTP, and the orchestrator process's own wiring."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.orchestrator import service
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent, decode_event
from shared.fleet import ORCHESTRATOR
from shared.messaging import dead_letters as dl
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.events import enrolment_created, score_remediated, submission_created
from tests.support.fleet import (
    configure,
    create_fleet_topics,
    delivery_engine,
    free_port,
    running,
    send,
)
from tests.support.kafka import consume, drained, eventually
from tests.support.programmes import publish_sample

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def orchestrator(settings: Settings, engine_port: int) -> AsyncIterator[Settings]:
    """Run the orchestrator process's wiring in this event loop."""
    configured = configure(settings, engine_port=engine_port)
    await create_fleet_topics(settings)
    async with running(service.run, configured):
        yield configured


async def assignments(pool: asyncpg.Pool, tenant: uuid.UUID) -> list[asyncpg.Record]:
    async with TenantUnitOfWork(pool, tenant) as uow:
        return await uow.connection.fetch(
            "SELECT a.*, r.key FROM assignments a"
            " JOIN programme_requirements r ON r.id = a.requirement_id ORDER BY r.sort_order"
        )


async def ledger(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, Any]:
    async with TenantUnitOfWork(pool, tenant) as uow:
        conn = uow.connection
        return {
            "enrolments": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT id, status, completed_at, programme_version FROM enrolments ORDER BY id"
                )
            ],
            "progress": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT p.status, p.submission_id, p.score_version, p.attempt_count, r.key"
                    " FROM progress p JOIN programme_requirements r ON r.id = p.requirement_id"
                    " ORDER BY p.enrolment_id, r.sort_order"
                )
            ],
            "history": await conn.fetchval("SELECT count(*) FROM progress_history"),
            "outbox": [
                r["event_id"] for r in await conn.fetch("SELECT event_id FROM outbox ORDER BY id")
            ],
        }


def by_key(rows: list[asyncpg.Record]) -> dict[str, asyncpg.Record]:
    return {r["key"]: r for r in rows}


async def test_enrolment_to_completion_with_prerequisites_and_duplicates(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        user, enrolment = uuid.uuid4(), uuid.uuid4()
        enrol = enrolment_created(
            sample.tenant_id,
            sample.programme_id,
            enrolled_at=NOW,
            enrolment_id=enrolment,
            user_id=user,
        )
        await send(running, enrol)

        async def first_two_created() -> bool:
            rows = await assignments(pool, sample.tenant_id)
            return [r["key"] for r in rows if r["status"] == "created"] == ["theory", "report"]

        await eventually(first_two_created)
        assert "hazard" not in by_key(await assignments(pool, sample.tenant_id))  # prerequisite

        linked = by_key(await assignments(pool, sample.tenant_id))

        def attempt(key: str, minute: int, **result: Any) -> CloudEvent[Any]:
            return submission_created(
                sample.tenant_id,
                assignment_id=linked[key]["assignment_id"],
                user_id=user,
                evaluation_id=sample.evaluations[key],
                submitted_at=NOW + timedelta(minutes=minute),
                **result,
            )

        failing, passing = attempt("theory", 10, score=60.0), attempt("theory", 20, score=85.0)
        await send(running, failing, passing)

        async def hazard_created() -> bool:
            rows = by_key(await assignments(pool, sample.tenant_id))
            return "hazard" in rows and rows["hazard"]["status"] == "created"

        await eventually(hazard_created)
        linked = by_key(await assignments(pool, sample.tenant_id))
        rest = [attempt("hazard", 30, score=75.0), attempt("report", 40, passed=True)]
        await send(running, *rest)

        completed_topic = topic_for("enrolment.completed", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, completed_topic, 1)
        completed = decode_event(record.value, "enrolment.completed", 1 << 20)
        assert completed.data.enrolment_id == enrolment
        assert completed.data.completed_at == NOW + timedelta(minutes=40)
        assert {e.submission_id for e in completed.data.evidence} == {
            passing.data.submission_id,
            *(e.data.submission_id for e in rest),
        }
        state = await ledger(pool, sample.tenant_id)
        assert state["enrolments"][0]["status"] == "completed"
        assert {p["key"]: p["attempt_count"] for p in state["progress"]} == {
            "theory": 2,
            "hazard": 1,
            "report": 1,
        }

        # Every event again: nothing changes, nothing new is published.
        await send(running, enrol, failing, passing, *rest)
        topics = [topic_for(t, settings.topic_prefix) for t in ORCHESTRATOR.consumes]
        await drained(
            settings.kafka_bootstrap_servers,
            running.topic_prefix + "programmes-orchestrator",
            topics,
        )
        assert await ledger(pool, sample.tenant_id) == state
        async with httpx.AsyncClient() as client:
            made = (await client.get(f"http://127.0.0.1:{engine.port}/api/v1/assignments")).json()
        assert len(made) == 3
        assert len({m["assignment_id"] for m in made}) == 3


async def test_remediation_reopens_and_a_correction_before_its_submission_waits(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        user, enrolment = uuid.uuid4(), uuid.uuid4()
        await send(
            running,
            enrolment_created(
                sample.tenant_id,
                sample.programme_id,
                enrolled_at=NOW,
                enrolment_id=enrolment,
                user_id=user,
            ),
        )

        async def all_created() -> bool:
            rows = await assignments(pool, sample.tenant_id)
            return len(rows) == 3 and all(r["status"] == "created" for r in rows)

        await eventually(all_created)
        linked = by_key(await assignments(pool, sample.tenant_id))
        theory_submission = uuid.uuid4()
        # The correction (to 90) arrives before the submission itself (scored 50).
        await send(
            running,
            score_remediated(
                sample.tenant_id,
                submission_id=theory_submission,
                score_version=2,
                remediated_at=NOW + timedelta(days=1),
                score=90.0,
            ),
        )
        await send(
            running,
            *[
                submission_created(
                    sample.tenant_id,
                    assignment_id=linked[key]["assignment_id"],
                    user_id=user,
                    evaluation_id=sample.evaluations[key],
                    submitted_at=NOW,
                    **result,
                    submission_id=theory_submission if key == "theory" else None,
                )
                for key, result in (
                    ("theory", {"score": 50.0}),
                    ("hazard", {"score": 70.0}),
                    ("report", {"passed": True}),
                )
            ],
        )

        async def status_is(expected: str) -> bool:
            enrolments = (await ledger(pool, sample.tenant_id))["enrolments"]
            return bool(enrolments[0]["status"] == expected)

        await eventually(lambda: status_is("completed"))
        # A later correction takes theory back (no other passing attempt): reopened.
        await send(
            running,
            score_remediated(
                sample.tenant_id,
                submission_id=theory_submission,
                score_version=3,
                remediated_at=NOW + timedelta(days=2),
                score=10.0,
            ),
        )
        await eventually(lambda: status_is("in_progress"))
        reopened_topic = topic_for("enrolment.reopened", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, reopened_topic, 1)
        reopened = decode_event(record.value, "enrolment.reopened", 1 << 20)
        assert reopened.data.submission_id == theory_submission
        assert reopened.data.score_version == 3
        state = await ledger(pool, sample.tenant_id)
        assert {p["key"]: p["status"] for p in state["progress"]}["theory"] == "pending"
        # A stale correction (version 2 again) changes nothing.
        await send(
            running,
            score_remediated(
                sample.tenant_id,
                submission_id=theory_submission,
                score_version=2,
                remediated_at=NOW + timedelta(days=3),
                score=99.0,
            ),
        )
        topics = [topic_for(t, settings.topic_prefix) for t in ORCHESTRATOR.consumes]
        await drained(
            settings.kafka_bootstrap_servers,
            running.topic_prefix + "programmes-orchestrator",
            topics,
        )
        assert await ledger(pool, sample.tenant_id) == state


async def test_a_message_naming_another_tenants_assignment_is_dead_lettered(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    victim = await publish_sample(pool, prerequisites=False)
    attacker = await publish_sample(pool, prerequisites=False)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        user = uuid.uuid4()
        await send(
            running,
            enrolment_created(victim.tenant_id, victim.programme_id, enrolled_at=NOW, user_id=user),
        )

        async def created() -> bool:
            rows = await assignments(pool, victim.tenant_id)
            return len(rows) == 3 and all(r["status"] == "created" for r in rows)

        await eventually(created)
        before = await ledger(pool, victim.tenant_id)
        target = by_key(await assignments(pool, victim.tenant_id))["theory"]
        forged = submission_created(
            attacker.tenant_id,
            assignment_id=target["assignment_id"],
            user_id=user,
            evaluation_id=victim.evaluations["theory"],
            submitted_at=NOW,
            score=100.0,
        )
        await send(running, forged)
        topic = topic_for("submission.created", settings.topic_prefix)
        [letter] = await consume(settings.kafka_bootstrap_servers, dead_letter_topic(topic), 1)
        assert dict(letter.headers)[dl.ERROR_CLASS] == b"CrossTenantReference"
        assert letter.value == forged.to_bytes()
        assert await ledger(pool, victim.tenant_id) == before
        assert (await ledger(pool, attacker.tenant_id))["progress"] == []


async def test_an_unavailable_delivery_engine_delays_assignments_but_loses_none(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    port = free_port()  # nothing listens there yet
    async with orchestrator(settings, port) as running:
        first = enrolment_created(sample.tenant_id, sample.programme_id, enrolled_at=NOW)
        await send(running, first)

        async def retried() -> bool:
            rows = await assignments(pool, sample.tenant_id)
            return len(rows) == 3 and all(
                r["status"] == "requested" and r["attempts"] >= 1 for r in rows
            )

        await eventually(retried)
        # Consumption goes on meanwhile: a second enrolment is applied.
        await send(
            running, enrolment_created(sample.tenant_id, sample.programme_id, enrolled_at=NOW)
        )

        async def six_requested() -> bool:
            return len(await assignments(pool, sample.tenant_id)) == 6

        await eventually(six_requested)
        async with delivery_engine(port):

            async def all_created() -> bool:
                rows = await assignments(pool, sample.tenant_id)
                return all(r["status"] == "created" for r in rows)

            await eventually(all_created, within=60)
            async with httpx.AsyncClient() as client:
                made = (await client.get(f"http://127.0.0.1:{port}/api/v1/assignments")).json()
        keys = [m["idempotency_key"] for m in made]
        assert len(keys) == len(set(keys)) == 6


@pytest.fixture(autouse=True)
def _quiet_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry a down engine every few hundred milliseconds rather than seconds."""
    from services.orchestrator import dispatcher

    monkeypatch.setattr(dispatcher, "MAX_DELAY_SECONDS", 0.3)
