"""`programmes enrol`: enrol a learner through `enrolment.created`, like the platform."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID, uuid4

import typer

from cli.common import JsonOption, TenantOption, database, kafka_sink, operator, print_json, run
from cli.errors import CommandError
from services.definitions import operations
from services.definitions.enrolments import Enrolment, EnrolmentRequest
from shared.outbox import OutboxRelay
from shared.settings import Settings

RELAY_TIMEOUT_SECONDS = 30.0


def enrol(
    tenant: TenantOption,
    user: Annotated[UUID, typer.Option("--user", help="The learner's user id (UUID).")],
    programme: Annotated[str, typer.Option("--programme", help="The programme's key.")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Display name for the certificate (tenant's rule applies)."),
    ] = None,
    enrolment: Annotated[
        UUID | None,
        typer.Option("--enrolment", help="Enrolment id (default: a new one); the idempotency key."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Enrol a learner: publishes enrolment.created (through the outbox) and prints
    the enrolment id once the event is on Kafka."""
    wanted = Enrolment(programme, user, enrolment or uuid4(), name)
    acting = operator(tenant)
    request = run(lambda settings: _enrol(settings, acting, wanted))
    if json_output:
        print_json(request)
    else:
        typer.echo(str(request.enrolment_id))
        if not request.requested:
            typer.echo("(this enrolment had been requested already: nothing new sent)", err=True)


async def _enrol(
    settings: Settings, acting: operations.Operator, wanted: Enrolment
) -> EnrolmentRequest:
    # Connect to Kafka first: with the broker down nothing is written at all.
    async with database(settings) as pool, kafka_sink(settings) as sink:
        request = await operations.enrol(
            pool, acting, wanted, now=datetime.now(UTC), topic_prefix=settings.topic_prefix
        )
        try:
            async with asyncio.timeout(RELAY_TIMEOUT_SECONDS):
                await OutboxRelay(pool, sink).drain()
        except TimeoutError:
            raise CommandError(
                f"enrolment {request.enrolment_id} is in the outbox but not yet on Kafka; "
                "the fleet's outbox relay will publish it"
            ) from None
    return request
