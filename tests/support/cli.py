"""Run `programmes` as an operator does: the installed entry point in a subprocess,
with the test's database, broker and topic prefix in its environment.

A subprocess (not CliRunner) because the tests run the orchestrator in their own
event loop meanwhile: the command must neither block that loop nor share its
stdout, and the one-line error handling of the entry point is part of what is
tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.settings import Settings

PROGRAMMES = Path(sys.executable).with_name("programmes")
# Connections and knobs the command must take from the test, never from the shell.
_INHERITED_OUT = ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "DATABASE_ADMIN_URL")


@dataclass(frozen=True)
class CliResult:
    """Exit code and both output streams of one command."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as JSON (the command ran with --json)."""
        return json.loads(self.stdout)

    @property
    def error(self) -> str:
        """The one line a failing command writes (fails unless exactly one)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


def cli_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a command run against the test's stack."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PROGRAMMES_") and k not in _INHERITED_OUT
    }
    env.update(
        DATABASE_URL=settings.database_url,
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        PROGRAMMES_TOPIC_PREFIX=settings.topic_prefix,
        PROGRAMMES_LOG_FORMAT="json",
        USER="test-operator",
    )
    env.update(extra)
    return env


COMMAND_SECONDS = 90.0


async def programmes(
    settings: Settings, *args: object, env: dict[str, str] | None = None
) -> CliResult:
    """Run `programmes ARGS...`; returns whatever happened."""
    argv = tuple(str(a) for a in args)
    process = await asyncio.create_subprocess_exec(
        str(PROGRAMMES),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_environment(settings, **(env or {})),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(argv, process.returncode, out.decode(), err.decode())


async def ok(settings: Settings, *args: object, env: dict[str, str] | None = None) -> CliResult:
    """Run a command that must succeed."""
    result = await programmes(settings, *args, env=env)
    assert result.exit_code == 0, f"{result.args} failed: {result.stderr}"
    return result


async def fails(settings: Settings, *args: object, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail with exit code 1 and one line; returns the line."""
    result = await programmes(settings, *args, env=env)
    assert result.exit_code == 1, f"{result.args}: exit {result.exit_code}, {result.stdout}"
    return result.error
