"""Login roles of a test's own, for breaking role attributes without touching the
shared `programmes_app` (roles are server-wide; databases are per test)."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg


@dataclass(frozen=True)
class ScratchRole:
    """A login role that starts as a copy of the services' role (a member of it)."""

    name: str
    url: str  # the test's database, logged in as this role


def with_login(url: str, user: str, password: str) -> str:
    """`url` with other credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.asynccontextmanager
async def scratch_role(
    admin_server_url: str, admin_database_url: str, app_url: str
) -> AsyncIterator[ScratchRole]:
    """A fresh role, member of programmes_app (hence with its privileges and nothing
    else), dropped afterwards with whatever it came to own in the test's database."""
    name = f"programmes_scratch_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(18)
    server = await asyncpg.connect(admin_server_url)
    try:
        await server.execute(
            f"CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            f" PASSWORD '{password}' IN ROLE programmes_app"
        )
        try:
            yield ScratchRole(name, with_login(app_url, name, password))
        finally:
            database = await asyncpg.connect(admin_database_url)
            try:
                await database.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    name,
                )
                await database.execute(f"REASSIGN OWNED BY {name} TO programmes_owner")
                await database.execute(f"DROP OWNED BY {name}")
            finally:
                await database.close()
            await server.execute(f"DROP ROLE IF EXISTS {name}")
    finally:
        await server.close()
