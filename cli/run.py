"""`programmes run SERVICE`: one service in the foreground, as its container runs it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shared import eventloop
from shared.logging import configure_logging
from shared.settings import get_settings

app = typer.Typer(help="Run one service in the foreground (SIGTERM drains and exits).")


class Service(StrEnum):
    """The runnable services."""

    orchestrator = "orchestrator"
    certifier = "certifier"
    renewer = "renewer"
    delivery_engine = "delivery-engine"


@app.command()
def run(
    service: Annotated[Service, typer.Argument(help="Which service to run.")],
    port: Annotated[int | None, typer.Option(help="HTTP port (default per service).")] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="delivery-engine only: file that keeps assignments across restarts."),
    ] = None,
) -> None:
    """Run SERVICE until SIGTERM or Ctrl-C."""
    settings = get_settings()
    configure_logging(settings)
    if port is not None:
        settings = settings.model_copy(update={"http_port": port})
    if service is Service.orchestrator:
        from services.orchestrator.service import run as run_orchestrator

        main = run_orchestrator(settings)
    elif service is Service.certifier:
        from services.certifier.service import run as run_certifier

        main = run_certifier(settings)
    elif service is Service.renewer:
        from services.renewer.service import run as run_renewer

        main = run_renewer(settings)
    else:
        from services.delivery_engine.main import serve

        main = serve(host=settings.http_host, port=port or 8090, state_file=state)
    eventloop.settle_heap()
    eventloop.run(main, settings)
