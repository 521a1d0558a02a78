"""``programmes dev``: start, stop and inspect the local Kafka + PostgreSQL stack."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

import devstack
from devstack import DevStackError, StackInfo, StackStatus

app = typer.Typer(
    name="dev",
    help="Local dev stack: a real Kafka broker and PostgreSQL on 127.0.0.1, no Docker.",
    no_args_is_help=True,
    # Tracebacks with locals would print the database passwords.
    pretty_exceptions_enable=False,
    add_completion=False,
)

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a DevStackError becomes 'error: ...' on stderr and exit code 1."""
    try:
        return action()
    except DevStackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _exports(info: StackInfo) -> list[str]:
    return [f"export {key}={shlex.quote(value)}" for key, value in info.env().items()]


def _summary(info: StackInfo) -> str:
    kafka, pg = info.kafka, info.postgres
    lines = [
        f"kafka     pid {kafka.pid:<8} {kafka.bootstrap_servers:<22} log {kafka.log_file}",
        f"postgres  pid {pg.pid:<8} {pg.host}:{pg.port:<12} log {pg.log_file}",
        f"state     {info.state_dir}",
        "",
        '# eval "$(programmes dev up --env)" sets these in your shell:',
        *_exports(info),
    ]
    return "\n".join(lines)


@app.command()
def up(
    json_output: JsonOption = False,
    env: Annotated[
        bool,
        typer.Option(
            "--env", help='Print only export lines, for eval "$(programmes dev up --env)".'
        ),
    ] = False,
) -> None:
    """Start Kafka and PostgreSQL (reusing them if already running)."""
    info = _guarded(devstack.up)
    if json_output:
        typer.echo(info.model_dump_json(indent=2))
    elif env:
        typer.echo("\n".join(_exports(info)))
    else:
        typer.echo(_summary(info))


@app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete all data (keeps the jar cache).")
    ] = False,
) -> None:
    """Stop the servers started by `up`."""
    _guarded(lambda: devstack.down(purge=purge))


def _status_text(result: StackStatus) -> str:
    lines = []
    for component in result.components:
        pid = str(component.pid) if component.pid is not None else "-"
        where = f"{component.host}:{component.port}"
        lines.append(f"{component.name:<9} {component.detail:<9} pid {pid:<8} {where}")
    lines.append(f"state     {result.state_dir}")
    return "\n".join(lines)


@app.command()
def status(json_output: JsonOption = False) -> None:
    """Show whether each server is running, with its pid and port."""
    result = _guarded(devstack.status)
    typer.echo(result.model_dump_json(indent=2) if json_output else _status_text(result))
