"""The event loop a service or command runs on, and the garbage collector's
settings for a long-running service.

uvloop (libuv) by default: the services spend most of their time in socket I/O
with Kafka and PostgreSQL, and asyncpg is written for it (ADR 0012, with the
figures). PROGRAMMES_EVENT_LOOP=asyncio falls back to the standard library's loop,
e.g. to rule uvloop out while troubleshooting.

A service allocates and frees many short-lived objects per event (decoded
events, rows, records); the cyclic collector's default of a young-generation
pass every 700 net allocations, each older pass also walking every module,
class and pydantic schema loaded at start, cost the orchestrator up to a fifth
of its CPU in py-spy profiles (ADR 0013). `settle_heap` moves what was loaded at
start out of the collector's sight (`gc.freeze`) and lets a young generation
grow to `YOUNG_GENERATION` objects before it is examined. Reference counting
still frees everything acyclic at once, so memory follows the same curve; only
cyclic garbage lives a little longer.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from shared.settings import Settings

T = TypeVar("T")

YOUNG_GENERATION = 50_000
"""Objects allocated (net) before the collector examines the youngest generation."""


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run `main` to completion on the configured loop (as `asyncio.run` does)."""
    if settings.event_loop == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)


def settle_heap() -> None:
    """Tune the cyclic garbage collector for a long-running service, once what it
    needs at start is imported: that is frozen out of every later collection."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, oldest)
