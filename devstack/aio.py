"""Run a coroutine from synchronous code, whether or not an event loop is running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` to completion and return its result.

    The dev-stack API is synchronous so the CLI and sync fixtures can call it, but it
    may also be called from async code (an async fixture, asyncio_mode=auto), where
    ``asyncio.run`` is forbidden: there the coroutine runs on a private loop in a
    worker thread, blocking the caller's loop for the (short) duration.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
