"""The event loop a service or command runs on.

uvloop (libuv) by default: the services spend most of their time in socket I/O
with Kafka and PostgreSQL, and asyncpg is written for it (ADR 0012, with the
figures). PROGRAMMES_EVENT_LOOP=asyncio falls back to the standard library's loop,
e.g. to rule uvloop out while troubleshooting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from shared.settings import Settings

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run `main` to completion on the configured loop (as `asyncio.run` does)."""
    if settings.event_loop == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)
