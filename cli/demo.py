"""`programmes demo`: the whole flow end to end on the local stack.

Starts the local Kafka and PostgreSQL (`dev up`), migrates, starts the reference
delivery engine and the fleet's services as real processes, creates a tenant with
a catalogue, applies the sample programme (three requirements, one with a
prerequisite), enrols a learner, plays the learner's submissions through Kafka as
the platform would (a failing attempt, passes, then a score correction), shows
progress after each step, and ends with the certificate's verification URL,
served by the certifier until `programmes demo --stop`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

import devstack
from cli.errors import CommandError
from cli.progress import render_report
from devstack.fleet import start_fleet, stop_fleet
from services.certifier.adapters.certificates import Certificates
from services.definitions import operations
from services.definitions.enrolments import Enrolment
from services.definitions.errors import NotFound
from services.definitions.model import parse_programme
from services.definitions.progress import ProgressReport
from services.delivery_engine.platform_events import score_remediated, submission_created
from shared.db.migrate import migrate
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.settings import Settings

app = typer.Typer()
KINDS = {"theory": "knowledge", "hazard": "observation", "report": "evidence"}


def programme_document(evaluations: dict[str, uuid.UUID]) -> dict[str, Any]:
    """The contract's sample programme, on this tenant's catalogue."""
    return {
        "key": "safety-inspector",
        "name": "Certified Safety Inspector 2025",
        "description": "Theory, a hazard perception observation, and an incident report.",
        "validity_period": "P1Y",
        "renewal_window": "P30D",
        "requirements": [
            {
                "key": "theory",
                "name": "Safety Theory",
                "min_score": 80,
                "evaluation_id": str(evaluations["theory"]),
            },
            {
                "key": "hazard",
                "name": "Hazard Perception Observation",
                "min_score": 70,
                "evaluation_id": str(evaluations["hazard"]),
                "prerequisites": ["theory"],
            },
            {
                "key": "report",
                "name": "Evidence: Incident Investigation Report",
                "min_score": None,
                "evaluation_id": str(evaluations["report"]),
            },
        ],
    }


class Story:
    """The demo's narrative: one learner through the sample programme."""

    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.tenant = uuid.uuid4()
        self.operator = operations.Operator(self.tenant, role="admin", actor="demo")
        self.user, self.enrolment = uuid.uuid4(), uuid.uuid4()
        self.evaluations = {key: uuid.uuid4() for key in KINDS}
        self.now = datetime.now(UTC).replace(microsecond=0)

    def say(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]▶ {text}[/]")

    async def run(self) -> str:
        pool = await create_pool(self.settings)
        sink = KafkaSink(self.settings.kafka_bootstrap_servers, client_id="programmes-demo")
        await sink.start()
        try:
            await self._set_up(pool)
            await self._learn(pool, sink)
            return await self._certificate_url(pool)
        finally:
            await sink.stop()
            await pool.close()

    async def _set_up(self, pool: Any) -> None:
        self.say(f"Tenant {self.tenant}: names shown in full on verification pages")
        await operations.set_tenant(pool, self.operator, "full")
        for key, evaluation in self.evaluations.items():
            await operations.add_evaluation(pool, self.operator, evaluation, KINDS[key], key)
        spec = parse_programme(programme_document(self.evaluations))
        published = await operations.apply_programme(pool, self.operator, spec, self.now)
        self.say(f"Programme {spec.key} published as version {published.version}")
        await operations.enrol(
            pool,
            self.operator,
            Enrolment(spec.key, self.user, self.enrolment, "Ada Lovelace"),
            now=self.now,
            topic_prefix=self.settings.topic_prefix,
        )
        self.say(
            f"Ada Lovelace enrolled (enrolment {self.enrolment}); theory and report are "
            "assigned, hazard waits for theory"
        )
        await self._until(pool, lambda r: _created(r) >= {"theory", "report"})

    async def _learn(self, pool: Any, sink: KafkaSink) -> None:
        first = await self._submit(pool, sink, "theory", score=60.0)
        self.say("Theory attempt 1 scored 60 (< 80): still pending")
        await self._until(pool, lambda r: _attempts(r, "theory") == 1)
        await self._submit(pool, sink, "theory", score=85.0)
        self.say("Theory attempt 2 scored 85: met, so the hazard observation is assigned")
        await self._until(pool, lambda r: "hazard" in _created(r))
        await self._submit(pool, sink, "hazard", score=75.0)
        await self._submit(pool, sink, "report", passed=True)
        self.say("Hazard observation 75, incident report passed: every requirement met")
        await self._until(pool, lambda r: r.status == "certified")
        await self._publish(
            sink,
            score_remediated(
                self.tenant,
                submission_id=first,
                score_version=2,
                score=82.0,
                remediated_at=datetime.now(UTC),
            ),
        )
        self.say(
            "A correction batch raises theory attempt 1 from 60 to 82: the first passing "
            "attempt is now the evidence; the certificate stands"
        )
        await self._until(pool, lambda r: _evidence(r, "theory") == first)

    async def _submit(self, pool: Any, sink: KafkaSink, key: str, **result: Any) -> uuid.UUID:
        report = await self._report(pool)
        assignment = next(r.assignment for r in report.requirements if r.key == key)
        assert assignment is not None and assignment.assignment_id is not None
        event = submission_created(
            self.tenant,
            assignment_id=assignment.assignment_id,
            user_id=self.user,
            evaluation_id=self.evaluations[key],
            submitted_at=datetime.now(UTC),
            **result,
        )
        await self._publish(sink, event)
        return event.data.submission_id  # type: ignore[no-any-return]

    async def _publish(self, sink: KafkaSink, event: CloudEvent[Any]) -> None:
        topic = topic_for(event.type, self.settings.topic_prefix)
        headers = [("content-type", b"application/cloudevents+json")]
        await sink.send(topic, event.to_bytes(), key=str(self.enrolment).encode(), headers=headers)

    async def _report(self, pool: Any) -> ProgressReport:
        return await operations.progress(pool, self.operator, self.enrolment)

    async def _until(
        self, pool: Any, done: Callable[[ProgressReport], bool], within: float = 60
    ) -> None:
        async with asyncio.timeout(within):
            while (report := await self._report_if_any(pool)) is None or not done(report):  # noqa: ASYNC110 - polls the ledger
                await asyncio.sleep(0.2)
        render_report(self.console, report)

    async def _report_if_any(self, pool: Any) -> ProgressReport | None:
        try:
            return await self._report(pool)
        except NotFound:  # the orchestrator has not consumed the enrolment yet
            return None

    async def _certificate_url(self, pool: Any) -> str:
        async with TenantUnitOfWork(pool, self.tenant) as uow:
            certificate = await Certificates(uow.connection).live_certificate(self.enrolment)
        assert certificate is not None
        return (
            f"{self.settings.public_base_url.rstrip('/')}/certs/verify/{certificate.public_token}"
        )


def _created(report: ProgressReport) -> set[str]:
    return {
        r.key
        for r in report.requirements
        if r.assignment is not None and r.assignment.status == "created"
    }


def _attempts(report: ProgressReport, key: str) -> int:
    return next(r.attempts for r in report.requirements if r.key == key)


def _evidence(report: ProgressReport, key: str) -> uuid.UUID | None:
    evidence = next(r.evidence for r in report.requirements if r.key == key)
    return None if evidence is None else evidence.submission_id


async def _verify(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(url)
        answer.raise_for_status()
        page = await client.get(url, headers={"accept": "text/html"})
        page.raise_for_status()
        return dict(answer.json())


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the demo's services.")] = False,
    certifier_port: Annotated[int, typer.Option(help="Verification page port.")] = 8080,
    orchestrator_port: Annotated[int, typer.Option()] = 8081,
    renewer_port: Annotated[int, typer.Option()] = 8082,
    engine_port: Annotated[int, typer.Option(help="Reference delivery engine port.")] = 8090,
) -> None:
    """Run the whole flow on the local stack; ends with a verification URL."""
    if stop:
        stopped = stop_fleet()
        typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return
    env = devstack.up().env()
    migrate(env["MIGRATIONS_DATABASE_URL"])
    base_url = f"http://127.0.0.1:{certifier_port}"
    service_env = {
        **os.environ,
        **env,
        "PUBLIC_BASE_URL": base_url,
        "ASSIGNMENT_SERVICE_URL": f"http://127.0.0.1:{engine_port}",
        "PROGRAMMES_LOG_FORMAT": "json",
    }
    ports = {
        "delivery-engine": engine_port,
        "orchestrator": orchestrator_port,
        "certifier": certifier_port,
        "renewer": renewer_port,
    }
    start_fleet(ports, service_env)
    settings = Settings(
        database_url=env["DATABASE_URL"],
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        public_base_url=base_url,
        topic_prefix=os.environ.get("PROGRAMMES_TOPIC_PREFIX", ""),
    )
    console = Console(highlight=False)
    url = asyncio.run(_story(settings, console))
    view = asyncio.run(_verify(url))
    console.print(f"\n[bold green]✔ Certificate {view['status']} for {view['holder']}[/]")
    console.print(f"Verification page: [link={url}]{url}[/link]")
    console.print("The services keep running; stop them with: programmes demo --stop")


async def _story(settings: Settings, console: Console) -> str:
    try:
        return await Story(settings, console).run()
    except TimeoutError as error:
        raise CommandError(
            "the demo stalled; see the services' logs in the dev state directory's fleet/"
        ) from error
