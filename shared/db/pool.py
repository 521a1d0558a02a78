"""The asyncpg pool every service uses, with JSON codecs for json/jsonb."""

from __future__ import annotations

import json
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.settings import Settings

Pool = asyncpg.Pool
Connection = asyncpg.Connection | PoolConnectionProxy
"""A plain or pooled connection: queries take either."""


class ResettingConnection(asyncpg.Connection):
    """A connection that can reset its session in the same round trip as the end
    of a transaction (`end_transaction`), so that releasing it to the pool costs
    no round trip of its own.

    The pool resets every connection it takes back (asyncpg's reset query: advisory
    locks released, cursors closed, LISTENs dropped, RESET ALL). The tenant setting
    is transaction-local, so this is a defence in depth, kept: a careless
    session-level setting must never reach the next borrower. A unit of work ends
    its transaction with the reset query appended (`end_transaction`), and the
    pool's reset then skips the round trip it would repeat (a unit of work
    releases its connection as soon as its transaction has ended). Any other
    borrower is reset by the pool as usual.
    """

    __slots__ = ("_session_reset",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_reset = False

    def note_session_reset(self) -> None:
        """The session was just reset (see `end_transaction`)."""
        self._session_reset = True

    async def reset_on_release(self) -> None:
        """The pool's reset (asyncpg has rolled back an open transaction before):
        nothing if the transaction's end just did it."""
        if self._session_reset:
            self._session_reset = False
            return
        await self.execute(self.get_reset_query())


async def end_transaction(conn: Connection, statement: str) -> None:
    """Run `statement` (COMMIT or ROLLBACK) and the session reset as one simple
    query. If the end fails, nothing after it ran, and the pool resets the
    connection on release; so it does when the connection is not a
    ResettingConnection (or was released meanwhile: the proxy then has none)."""
    await conn.execute(f"{statement};\n{conn.get_reset_query()}")
    note = getattr(conn, "note_session_reset", None)
    if note is not None:
        note()


async def _reset(conn: asyncpg.Connection) -> None:
    # The pool makes ResettingConnections only (connection_class below).
    await cast(ResettingConnection, conn).reset_on_release()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(settings: Settings, dsn: str | None = None) -> Pool:
    """Open a pool as the services' role (or `dsn`), ready for tenant units of work."""
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        init=_init_connection,
        connection_class=ResettingConnection,
        reset=_reset,  # every release resets the session (see ResettingConnection)
        command_timeout=60,
    )
    assert pool is not None
    return pool
