"""The asyncpg pool every service uses, with JSON codecs for json/jsonb."""

from __future__ import annotations

import json

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.settings import Settings

Pool = asyncpg.Pool
Connection = asyncpg.Connection | PoolConnectionProxy
"""A plain or pooled connection: queries take either."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset between borrowers: the fleet keeps no session state (the
    tenant setting is transaction-local, advisory locks are transaction-scoped, no
    LISTEN, no cursors held). asyncpg still rolls back an open transaction first."""


async def create_pool(settings: Settings, dsn: str | None = None) -> Pool:
    """Open a pool as the services' role (or `dsn`), ready for tenant units of work."""
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        init=_init_connection,
        reset=_keep_session,  # saves asyncpg's RESET ALL round trip per release
        command_timeout=60,
    )
    assert pool is not None
    return pool
