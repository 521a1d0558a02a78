"""The renewer on the real stack: renewal window -> one renewal enrolment, run by
the orchestrator on the current programme version with new assignments;
expiry -> certificate and enrolment expired, certificate.expired published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import structlog
from typer.testing import CliRunner

from cli import renew as renew_cli
from cli.errors import CommandError
from services.definitions import service as definitions
from services.definitions.model import parse_programme
from services.delivery_engine.app import create_app
from services.orchestrator import service as orchestrator_service
from services.renewer import domain
from services.renewer import service as renewer_service
from services.renewer.renewer import PassResult, run_pass
from services.renewer.service import run_once
from shared.db.uow import TenantUnitOfWork
from shared.events import decode_event
from shared.fleet import ORCHESTRATOR, RENEWER
from shared.http import HttpServer
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings, get_settings
from tests.support.certificates import SeededCertificate, seed_certified, seed_many_certified
from tests.support.kafka import consume, create_topics, eventually
from tests.support.programmes import Sample, publish_sample, sample_document

ISSUED = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)  # P1Y: expires 2027-01-15 10:00
EXPIRES = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
BEFORE_WINDOW = EXPIRES - timedelta(days=30, seconds=1)  # P30D window
INSIDE_WINDOW = datetime(2026, 12, 20, 8, 0, tzinfo=UTC)
AFTER_EXPIRY = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)
SECOND_VERSION_AT = datetime(2026, 6, 1, tzinfo=UTC)


async def rows(
    pool: asyncpg.Pool, tenant: uuid.UUID, query: str, *args: Any
) -> list[dict[str, Any]]:
    async with TenantUnitOfWork(pool, tenant) as uow:
        return [dict(r) for r in await uow.connection.fetch(query, *args)]


async def outbox(pool: asyncpg.Pool, tenant: uuid.UUID) -> list[dict[str, Any]]:
    return await rows(
        pool, tenant, "SELECT topic, message_key, event_id, event FROM outbox ORDER BY id"
    )


async def certificate(pool: asyncpg.Pool, seeded: SeededCertificate) -> dict[str, Any]:
    [row] = await rows(
        pool, seeded.tenant_id, "SELECT * FROM certificates WHERE id = $1", seeded.certificate_id
    )
    return row


async def renewer_topics(settings: Settings) -> None:
    await create_topics(
        settings.kafka_bootstrap_servers,
        [topic_for(t, settings.topic_prefix) for t in RENEWER.produces],
    )


async def test_nothing_happens_before_the_window_opens(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    seeded = await seed_certified(pool, sample, issued_at=ISSUED)
    assert seeded.expires_at == EXPIRES

    assert await run_pass(pool, settings, BEFORE_WINDOW) == PassResult()

    stored = await certificate(pool, seeded)
    assert stored["renewal_opens_at"] == EXPIRES - timedelta(days=30)
    assert (stored["status"], stored["renewal_enrolment_id"]) == ("active", None)
    assert await outbox(pool, sample.tenant_id) == []


async def test_a_certificate_in_its_window_gets_exactly_one_renewal(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    org_unit = uuid.uuid4()
    seeded = await seed_certified(pool, sample, issued_at=ISSUED, org_unit_id=org_unit)
    # More certificates in the window than one batch, to page through them.
    await seed_many_certified(
        pool, sample, 20, first_issued_at=ISSUED, spacing=timedelta(minutes=1)
    )

    first, second = await asyncio.gather(
        run_pass(pool, settings, INSIDE_WINDOW, batch_size=6, concurrency=3),
        run_pass(pool, settings, INSIDE_WINDOW, batch_size=6, concurrency=3),
    )
    assert first.renewals_opened + second.renewals_opened == 21
    assert first.certificates_expired + second.certificates_expired == 0
    assert await run_pass(pool, settings, INSIDE_WINDOW + timedelta(days=1)) == PassResult()
    again = await asyncio.gather(
        run_pass(pool, settings, INSIDE_WINDOW), run_pass(pool, settings, INSIDE_WINDOW)
    )
    assert list(again) == [PassResult(), PassResult()]

    events = await outbox(pool, sample.tenant_id)
    assert len(events) == len({e["event_id"] for e in events}) == 21
    [mine] = [
        e
        for e in events
        if e["event"]["data"]["renewal_of_enrolment_id"] == str(seeded.enrolment_id)
    ]
    renewal_id = domain.renewal_enrolment_id(sample.tenant_id, seeded.enrolment_id)
    assert mine["topic"] == topic_for("enrolment.created", settings.topic_prefix)
    assert mine["message_key"] == str(renewal_id)
    assert mine["event_id"] == domain.renewal_event_id(sample.tenant_id, seeded.enrolment_id)
    event = decode_event(json.dumps(mine["event"]).encode(), "enrolment.created", 1 << 20)
    assert (event.source, event.tenantid, event.orgunitid) == (
        "/programmes/renewer",
        sample.tenant_id,
        org_unit,
    )
    assert event.data.enrolment_id == renewal_id
    assert event.data.user_id == seeded.user_id
    assert event.data.program_id == sample.programme_id
    assert event.data.enrolled_at == INSIDE_WINDOW
    assert event.data.user_display_name == "Ada Lovelace"
    stored = await certificate(pool, seeded)
    assert stored["renewal_enrolment_id"] == renewal_id
    assert stored["renewal_requested_at"] == INSIDE_WINDOW
    assert stored["status"] == "active"


@contextlib.asynccontextmanager
async def delivery_engine() -> AsyncIterator[HttpServer]:
    server = HttpServer(create_app(), "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def orchestrator(settings: Settings, engine_port: int) -> AsyncIterator[None]:
    """The orchestrator process's wiring, in this event loop."""
    configured = settings.model_copy(
        update={
            "assignment_service_url": f"http://127.0.0.1:{engine_port}",
            "http_port": 0,
            "dispatch_interval": 0.1,
            "relay_interval": 0.05,
        }
    )
    topics = [
        topic_for(t, settings.topic_prefix)
        for t in (*ORCHESTRATOR.consumes, *ORCHESTRATOR.produces)
    ]
    await create_topics(
        settings.kafka_bootstrap_servers, [*topics, *map(dead_letter_topic, topics)]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(orchestrator_service.run(configured, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def publish_second_version(pool: asyncpg.Pool, sample: Sample) -> None:
    document = sample_document(sample.evaluations, name="Certified Safety Inspector 2026")
    for requirement in document["requirements"]:
        requirement.pop("prerequisites", None)
    async with TenantUnitOfWork(pool, sample.tenant_id, actor_role="admin") as uow:
        published = await definitions.apply(
            uow.connection, parse_programme(document), actor="test", now=SECOND_VERSION_AT
        )
        await uow.commit()
    assert (published.programme_id, published.version) == (sample.programme_id, 2)


async def test_the_renewal_is_an_enrolment_on_the_current_version_with_new_assignments(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    seeded = await seed_certified(pool, sample, issued_at=ISSUED)
    await publish_second_version(pool, sample)
    renewal_id = domain.renewal_enrolment_id(sample.tenant_id, seeded.enrolment_id)

    async def assignments_of(enrolment_id: uuid.UUID) -> list[dict[str, Any]]:
        return await rows(
            pool,
            sample.tenant_id,
            "SELECT * FROM assignments WHERE enrolment_id = $1",
            enrolment_id,
        )

    async with delivery_engine() as engine, orchestrator(settings, engine.port):
        await renewer_topics(settings)
        assert await run_once(settings, INSIDE_WINDOW) == PassResult(renewals_opened=1)

        async def renewal_assigned() -> bool:
            made = await assignments_of(renewal_id)
            return len(made) == 3 and all(a["status"] == "created" for a in made)

        await eventually(renewal_assigned)

    enrolments = {
        r["id"]: r for r in await rows(pool, sample.tenant_id, "SELECT * FROM enrolments")
    }
    old, new = enrolments[seeded.enrolment_id], enrolments[renewal_id]
    assert (old["programme_version"], old["status"]) == (1, "certified")
    assert (new["programme_version"], new["status"]) == (2, "in_progress")
    assert new["renewal_of_enrolment_id"] == seeded.enrolment_id
    assert (new["user_id"], new["user_display_name"]) == (seeded.user_id, "Ada Lovelace")
    assert new["enrolled_at"] == INSIDE_WINDOW
    # New assignments and new evidence: nothing of the old enrolment counts again.
    before, after = await assignments_of(seeded.enrolment_id), await assignments_of(renewal_id)
    assert not {a["idempotency_key"] for a in before} & {a["idempotency_key"] for a in after}
    assert not {a["assignment_id"] for a in before} & {a["assignment_id"] for a in after}
    progress = await rows(
        pool,
        sample.tenant_id,
        "SELECT status, programme_version FROM progress WHERE enrolment_id = $1",
        renewal_id,
    )
    assert progress == [{"status": "pending", "programme_version": 2}] * 3


async def test_after_expiry_the_certificate_and_its_enrolment_expire(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    seeded = await seed_certified(pool, sample, issued_at=ISSUED)
    await renewer_topics(settings)

    # No pass saw the window: the renewal is still opened, then the expiry applied.
    assert await run_once(settings, AFTER_EXPIRY) == PassResult(
        renewals_opened=1, certificates_expired=1
    )
    assert await run_pass(pool, settings, AFTER_EXPIRY + timedelta(days=1)) == PassResult()

    stored = await certificate(pool, seeded)
    assert (stored["status"], stored["expired_at"]) == ("expired", AFTER_EXPIRY)
    [enrolment] = await rows(
        pool, sample.tenant_id, "SELECT status FROM enrolments WHERE id = $1", seeded.enrolment_id
    )
    assert enrolment["status"] == "expired"
    event_id = domain.expiry_event_id(sample.tenant_id, seeded.certificate_id)
    history = await rows(
        pool,
        sample.tenant_id,
        "SELECT status, previous_status, reason, event_id, event_type FROM enrolment_history"
        " WHERE enrolment_id = $1",
        seeded.enrolment_id,
    )
    assert history == [
        {
            "status": "expired",
            "previous_status": "certified",
            "reason": "certificate_expired",
            "event_id": event_id,
            "event_type": "certificate.expired",
        }
    ]
    topic = topic_for("certificate.expired", settings.topic_prefix)
    [record] = await consume(settings.kafka_bootstrap_servers, topic, 1)
    expired = decode_event(record.value, "certificate.expired", 1 << 20)
    assert (expired.id, expired.time, expired.source) == (
        event_id,
        EXPIRES,
        "/programmes/renewer",
    )
    assert expired.data.certificate_id == seeded.certificate_id
    assert expired.data.enrolment_id == seeded.enrolment_id
    assert expired.data.user_id == seeded.user_id
    assert expired.data.program_id == sample.programme_id
    assert (expired.data.issued_at, expired.data.expires_at) == (ISSUED, EXPIRES)
    assert expired.data.status == "expired"
    assert expired.data.verification_url == (
        f"{settings.public_base_url}/certs/verify/{seeded.public_token}"
    )
    assert record.key == str(seeded.enrolment_id).encode()


async def test_an_archived_programme_gets_no_renewal(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    seeded = await seed_certified(pool, sample, issued_at=ISSUED)
    async with TenantUnitOfWork(pool, sample.tenant_id, actor_role="admin") as uow:
        await uow.connection.execute(
            "UPDATE programmes SET status = 'archived', archived_at = now()"
        )
        await uow.commit()

    assert await run_pass(pool, settings, INSIDE_WINDOW) == PassResult()
    assert (await certificate(pool, seeded))["renewal_enrolment_id"] is None
    assert await run_pass(pool, settings, AFTER_EXPIRY) == PassResult(certificates_expired=1)
    assert [e["event"]["type"] for e in await outbox(pool, sample.tenant_id)] == [
        "certificate.expired"
    ]


async def test_loop_mode_runs_passes_and_publishes_through_the_relay(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    seeded = await seed_certified(pool, sample, issued_at=ISSUED)
    await renewer_topics(settings)
    configured = settings.model_copy(update={"http_port": 0, "relay_interval": 0.05})
    stop = asyncio.Event()
    task = asyncio.create_task(
        renewer_service.run(configured, stop, interval=0.05, clock=lambda: AFTER_EXPIRY)
    )
    try:
        topic = topic_for("certificate.expired", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, topic, 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    expired = decode_event(record.value, "certificate.expired", 1 << 20)
    assert expired.data.certificate_id == seeded.certificate_id
    # Pass after pass ran meanwhile; still one renewal and one expiry.
    assert [e["event"]["type"] for e in await outbox(pool, sample.tenant_id)] == [
        "enrolment.created",
        "certificate.expired",
    ]


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command reads its settings from the environment: point it at this test's."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("PROGRAMMES_TOPIC_PREFIX", settings.topic_prefix)
    # Logging is the process's business; the runner swaps the streams it would hold.
    monkeypatch.setattr(renew_cli, "configure_logging", lambda settings: None)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("environment")
async def test_the_renew_command_runs_one_pass(settings: Settings, pool: asyncpg.Pool) -> None:
    sample = await publish_sample(pool)
    await seed_certified(pool, sample, issued_at=ISSUED)
    await renewer_topics(settings)
    runner = CliRunner()

    # Logs go to stderr once configure_logging ran; unconfigured, structlog prints
    # to stdout, so keep them out of the output under test.
    with structlog.testing.capture_logs() as logs:
        result = await asyncio.to_thread(
            runner.invoke, renew_cli.app, ["--now", "2026-12-20T08:00:00Z", "--json"]
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "now": "2026-12-20T08:00:00+00:00",
        "renewals_opened": 1,
        "certificates_expired": 0,
        "failed": 0,
    }
    assert [e["renewals_opened"] for e in logs if e["event"] == "renewer pass"] == [1]
    with structlog.testing.capture_logs():
        again = await asyncio.to_thread(runner.invoke, renew_cli.app, ["--now", "2026-12-21"])
    assert again.exit_code == 0, again.output
    assert again.stdout == "renewals opened: 0\ncertificates expired: 0\n"

    invalid = await asyncio.to_thread(runner.invoke, renew_cli.app, ["--now", "next tuesday"])
    assert isinstance(invalid.exception, CommandError)
    assert "not an ISO 8601 time" in str(invalid.exception)


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({}, 3600.0),
        ({"PROGRAMMES_RENEW_INTERVAL": ""}, 3600.0),
        ({"PROGRAMMES_RENEW_INTERVAL": "90"}, 90.0),
    ],
)
def test_the_loop_interval_comes_from_the_environment(
    environ: dict[str, str], seconds: float
) -> None:
    assert renewer_service.renew_interval(environ) == seconds


@pytest.mark.parametrize("raw", ["0", "-5", "hourly", "nan"])
def test_a_meaningless_loop_interval_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="PROGRAMMES_RENEW_INTERVAL"):
        renewer_service.renew_interval({"PROGRAMMES_RENEW_INTERVAL": raw})
