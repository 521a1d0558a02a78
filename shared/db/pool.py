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


async def create_pool(settings: Settings, dsn: str | None = None) -> Pool:
    """Open a pool as the services' role (or `dsn`), ready for tenant units of work."""
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        init=_init_connection,
        # The tenant setting is transaction-local; the default reset on release
        # (RESET ALL, ...) still clears anything a careless session-level setting
        # would leave for the next borrower: one round trip, kept as a defence.
        command_timeout=60,
    )
    assert pool is not None
    return pool
