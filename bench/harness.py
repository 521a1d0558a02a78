"""Run the chosen scenarios in order on one stack, then print and write the figures."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from rich.console import Console

from bench.ceilings import ceiling
from bench.certification import certifier
from bench.context import Context
from bench.latency import latency
from bench.naive import naive
from bench.options import Options
from bench.processes import MemorySampler
from bench.renewal import renewer
from bench.replay import replay
from bench.report import KINDS, Results, publish
from bench.stack import opened_stack, server_settings
from bench.throughput import orchestrator, scaling
from bench.verification import verification

Scenario = Callable[[Context], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "ceiling": ceiling,
    "naive": naive,
    "orchestrator": orchestrator,
    "scaling": scaling,
    "latency": latency,
    "replay": replay,
    "certifier": certifier,
    "renewer": renewer,
    "verification": verification,
}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _scenarios(ctx: Context) -> None:
    """Run each scenario; a failing one is reported and the others still run."""
    for name in ctx.options.scenarios:
        say(f"{name}: started")
        started = time.perf_counter()
        try:
            await SCENARIOS[name](ctx)
        except Exception as error:
            ctx.results.failed.append(name)
            traceback.print_exc(file=sys.stderr)
            ctx.results.note(f"{name} FAILED: {type(error).__name__}: {error}".splitlines()[0])
        say(f"{name}: done in {time.perf_counter() - started:.0f} s")


@contextlib.contextmanager
def _logs_directory(kept: Path | None) -> Iterator[str]:
    if kept is None:
        with tempfile.TemporaryDirectory(prefix="programmes-bench-") as logs:
            yield logs
    else:
        kept.mkdir(parents=True, exist_ok=True)
        yield str(kept)


async def run(options: Options) -> int:
    """The whole benchmark; exit status 1 when a scenario failed."""
    results = Results(options)
    memory = MemorySampler()
    with _logs_directory(options.keep_logs) as logs:
        async with opened_stack() as stack:
            say(f"stack: Kafka {stack.conns.kafka}, databases bench_{stack.tag}_*")
            results.servers = await server_settings(stack.conns)
            ctx = Context(stack, options, results, memory, Path(logs))
            sampling = asyncio.create_task(memory.run())
            try:
                await _scenarios(ctx)
            finally:
                sampling.cancel()
                await asyncio.gather(sampling, return_exceptions=True)
    for service, peak in memory.peaks_mb.items():
        if f"rss_{service}" in KINDS:
            results.add(f"rss_{service}", peak)
    publish(results, Console(highlight=False, width=None if sys.stdout.isatty() else 150))
    return 1 if results.failed else 0
