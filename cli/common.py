"""What the operator commands share: options, the async runner, connections, JSON.

Connections come from the environment (shared.settings); every failure ends as
one `error: ...` line (cli.main), never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from uuid import UUID

import asyncpg
import typer
from aiokafka.errors import KafkaError

from cli.errors import CommandError
from services.definitions.errors import DefinitionsError
from services.definitions.operations import Operator
from shared import eventloop
from shared.db.pool import create_pool
from shared.logging import configure_logging
from shared.messaging.producer import KafkaSink
from shared.settings import Settings, get_settings

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TenantOption = Annotated[UUID, typer.Option("--tenant", help="The tenant's id (UUID).")]
RoleOption = Annotated[
    str,
    typer.Option(
        "--role",
        envvar="PROGRAMMES_ACTOR_ROLE",
        help="Actor role for the database's definition policies (admin or author may write).",
    ),
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who is acting, recorded on programmes (default: $USER)."),
]


def operator(tenant_id: UUID, role: str | None = None, actor: str | None = None) -> Operator:
    """The acting operator: a role only for definition writes (reads need none), the
    name from --actor or $USER."""
    return Operator(tenant_id, role or None, actor or os.environ.get("USER") or "unknown")


def run(main: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run an async command body with the environment's settings; the definitions
    service's refusals become one-line command errors."""
    settings = get_settings()
    # Logs go to stderr: stdout carries only the command's output (e.g. --json).
    configure_logging(settings)
    # aiokafka logs at ERROR what it then handles (a topic being auto-created):
    # real failures reach the command as exceptions, and are told in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return eventloop.run(main(settings), settings)
    except DefinitionsError as error:
        raise CommandError(str(error)) from None


def run_with_pool(action: Callable[[asyncpg.Pool], Coroutine[Any, Any, T]]) -> T:
    """Run one database operation of a command with a small pool (see `run`)."""

    async def body(settings: Settings) -> T:
        async with database(settings) as pool:
            return await action(pool)

    return run(body)


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A small pool as the services' role (DATABASE_URL)."""
    small = settings.model_copy(update={"db_pool_min_size": 1, "db_pool_max_size": 2})
    try:
        pool = await create_pool(small)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise CommandError(f"cannot connect to the database: {_line(error)}") from None
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def kafka_sink(settings: Settings) -> AsyncIterator[KafkaSink]:
    """The fleet's idempotent producer, connected to KAFKA_BOOTSTRAP_SERVERS."""
    sink = KafkaSink(settings.kafka_bootstrap_servers, client_id="programmes-cli")
    try:
        await sink.start()
    except KafkaError as error:
        await sink.stop()
        raise CommandError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {_line(error)}"
        ) from None
    try:
        yield sink
    finally:
        await sink.stop()


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def jsonable(value: Any) -> Any:
    """Dataclasses, ids, times and decimals as plain JSON values (dataclass fields
    marked `metadata={"json": False}` are left out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def print_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    typer.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def score_text(value: Decimal) -> str:
    """A score as people write it: 85, 72.5 (not 85.00, nor 1E+2)."""
    return format(value.normalize(), "f")


def when(value: datetime | None) -> str:
    """A time for people: UTC, to the second."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
