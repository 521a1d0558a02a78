"""`programmes renew [--now TIME]`: one pass of the renewer (the CronJob's command)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.errors import CommandError
from shared import eventloop
from shared.logging import configure_logging
from shared.settings import get_settings

app = typer.Typer(help="The renewer, one pass at a time.")


def parse_now(value: str | None) -> datetime:
    """`--now` as an aware datetime: ISO 8601, UTC when it names no offset; the
    current time when absent."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise CommandError(
            f"--now: {value!r} is not an ISO 8601 time (e.g. 2027-01-01T00:00:00Z)"
        ) from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("renew")
def renew(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Run as of this ISO 8601 time (UTC unless it says otherwise)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One pass of the renewer: open the renewal enrolments that are due, expire the
    certificates that have expired, and publish their events."""
    at = parse_now(now)
    settings = get_settings()
    configure_logging(settings)
    from services.renewer.service import run_once

    result = eventloop.run(run_once(settings, at), settings)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "now": at.isoformat(),
                    "renewals_opened": result.renewals_opened,
                    "certificates_expired": result.certificates_expired,
                    "failed": result.failed,
                }
            )
        )
    else:
        typer.echo(f"renewals opened: {result.renewals_opened}")
        typer.echo(f"certificates expired: {result.certificates_expired}")
    if result.failed:
        raise CommandError(
            f"{result.failed} certificate(s) could not be settled (see the log); "
            "the next pass retries them"
        )
