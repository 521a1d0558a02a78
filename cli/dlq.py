"""`programmes dlq list|replay --topic T`: inspect or re-publish T's dead letters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.common import JsonOption, kafka_sink, print_json, run, when
from cli.dead_letters import (
    REPLAY_GROUP,
    DeadLetter,
    Replayed,
    list_dead_letters,
    replay_dead_letters,
)
from cli.topics import qualified
from shared.messaging import dead_letters as dl
from shared.messaging.topics import DLQ_SUFFIX, dead_letter_topic
from shared.settings import Settings

app = typer.Typer(help="Dead letters: messages that could not be processed.", no_args_is_help=True)
TopicOption = Annotated[
    str, typer.Option("--topic", help="The source topic, e.g. submission.created (reads T.dlq).")
]


def _dlq(topic: str, settings: Settings) -> str:
    return dead_letter_topic(qualified(topic.removesuffix(DLQ_SUFFIX), settings.topic_prefix))


@app.command("list")
def list_letters(topic: TopicOption, json_output: JsonOption = False) -> None:
    """List the dead letters of TOPIC (read from the beginning; commits nothing)."""

    async def body(settings: Settings) -> tuple[str, list[DeadLetter]]:
        name = _dlq(topic, settings)
        return name, await list_dead_letters(settings.kafka_bootstrap_servers, name)

    name, letters = run(body)
    if json_output:
        print_json({"topic": name, "dead_letters": letters})
        return
    if not letters:
        typer.echo(f"no dead letters on {name}")
        return
    table = Table("partition:offset", "failed", "error", "source", "key", "event")
    for letter in letters:
        headers = letter.headers
        table.add_row(
            f"{letter.partition}:{letter.offset}",
            when(letter.timestamp),
            f"{headers.get(dl.ERROR_CLASS, '?')}: {headers.get(dl.ERROR_MESSAGE, '')}",
            f"{letter.source_topic}[{headers.get(dl.SOURCE_PARTITION, '?')}]"
            f"@{headers.get(dl.SOURCE_OFFSET, '?')}",
            letter.key or "-",
            f"{letter.event_type} {letter.event_id}" if letter.event_id else "not a CloudEvent",
        )
    Console(highlight=False).print(table)


@app.command("replay")
def replay_letters(
    topic: TopicOption,
    execute: Annotated[
        bool, typer.Option("--execute", help="Re-publish (default: a dry run).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Re-publish TOPIC's dead letters not replayed yet to their source topic, with
    their original key, value and headers (the event id is kept)."""

    async def body(settings: Settings) -> tuple[str, str, list[Replayed]]:
        name = _dlq(topic, settings)
        group = qualified(REPLAY_GROUP, settings.topic_prefix)
        bootstrap = settings.kafka_bootstrap_servers
        if not execute:
            return name, group, await replay_dead_letters(bootstrap, name, group, None)
        async with kafka_sink(settings) as sink:
            return name, group, await replay_dead_letters(bootstrap, name, group, sink)

    name, group, results = run(body)
    if json_output:
        print_json({"topic": name, "group": group, "executed": execute, "dead_letters": results})
        return
    for item in results:
        typer.echo(
            f"{item.partition}:{item.offset} {item.outcome} -> {item.source_topic or '?'}"
            f" ({item.event_type or 'not a CloudEvent'} {item.event_id or ''})".rstrip()
        )
    replayed = sum(1 for r in results if r.outcome in ("replayed", "would_replay"))
    verb = "replayed" if execute else "to replay (dry run: add --execute)"
    typer.echo(f"{replayed} dead letter(s) {verb} from {name}")
