"""Named SQL queries from `.sql` files, parsed by aiosql for the asyncpg driver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiosql

T = TypeVar("T")


def load_queries(path: Path) -> Any:
    """The queries of one `.sql` file (or a folder of them) as awaitable methods."""
    return aiosql.from_path(path, "asyncpg")


messaging = load_queries(Path(__file__).with_name("sql") / "messaging.sql")


async def fetch_all(rows: AsyncIterator[T]) -> list[T]:
    """Collect a multi-row query's results (aiosql yields them one by one)."""
    return [row async for row in rows]
