"""`programmes replay`: reset a stopped consumer group's offsets, for reprocessing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.common import JsonOption, print_json, run
from cli.offsets import OffsetMove, parse_target, reset_offsets
from cli.topics import qualified
from shared.settings import Settings


def replay(
    group: Annotated[
        str, typer.Option("--group", help="Consumer group, e.g. programmes-orchestrator.")
    ],
    to: Annotated[
        str,
        typer.Option("--to", help="earliest, latest, an offset, or an ISO 8601 date-time."),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            help="Only this topic (repeatable; default: every topic "
            "the group has committed offsets for).",
        ),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Apply the reset (default: a dry run).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Reset a consumer group's offsets (the group must be stopped). A dry run unless
    --execute: prints each partition's committed offset and the new one."""
    target = parse_target(to)

    async def body(settings: Settings) -> tuple[str, list[OffsetMove]]:
        prefix = settings.topic_prefix
        name = qualified(group, prefix)
        topics = [qualified(t, prefix) for t in topic or ()]
        moves = await reset_offsets(
            settings.kafka_bootstrap_servers, name, topics, target, execute=execute
        )
        return name, moves

    name, moves = run(body)
    if json_output:
        print_json({"group": name, "to": to, "executed": execute, "partitions": moves})
        return
    table = Table("topic", "partition", "committed", "new")
    for move in moves:
        current = "-" if move.current is None else str(move.current)
        table.add_row(move.topic, str(move.partition), current, str(move.new))
    console = Console(highlight=False)
    console.print(table)
    if execute:
        console.print(f"group {name}: offsets reset to {to}")
    else:
        console.print(f"dry run: nothing changed (add --execute to reset group {name})")
