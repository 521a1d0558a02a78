"""Database faults in a test's own database, injected as the superuser: transactions
that fail mid-way (a statement trigger raising a serialization failure at random,
which the services must retry) and connections terminated under the services
(pg_terminate_backend on the services' role's busy backends)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import pytest

APP_ROLE = "programmes_app"


async def require_superuser(admin_url: str) -> None:
    """Skip the test unless DATABASE_ADMIN_URL is a superuser (it may only be allowed to
    create databases when the stack comes from the environment)."""
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            pytest.skip("needs DATABASE_ADMIN_URL to be a superuser, to inject faults")
    finally:
        await conn.close()


@dataclass
class Failures:
    """How many statements were made to fail (read after the block)."""

    injected: int = 0


@contextlib.asynccontextmanager
async def failing_statements(
    admin_url: str, tables: Sequence[str], probability: float
) -> AsyncIterator[Failures]:
    """Every INSERT or UPDATE statement on `tables` fails with SQLSTATE 40001 with
    `probability`, after its rows were written (the transaction is then doomed)."""
    conn = await asyncpg.connect(admin_url)
    failures = Failures()
    try:
        # A sequence counts the failures: nextval() survives the rollback.
        await conn.execute("CREATE SEQUENCE chaos_failures")
        await conn.execute(f"GRANT USAGE ON SEQUENCE chaos_failures TO {APP_ROLE}")
        await conn.execute(
            "CREATE FUNCTION chaos_fail() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF random() < {float(probability)} THEN"
            "   PERFORM nextval('chaos_failures');"
            "   RAISE EXCEPTION 'chaos: injected failure' USING ERRCODE = '40001';"
            " END IF; RETURN NULL; END $$"
        )
        for table in tables:
            await conn.execute(
                f"CREATE TRIGGER chaos_fail AFTER INSERT OR UPDATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION chaos_fail()"
            )
        yield failures
    finally:
        for table in tables:
            await conn.execute(f"DROP TRIGGER IF EXISTS chaos_fail ON {table}")
        await conn.execute("DROP FUNCTION IF EXISTS chaos_fail()")
        failures.injected = int(
            await conn.fetchval(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM chaos_failures"
            )
        )
        await conn.execute("DROP SEQUENCE chaos_failures")
        await conn.close()


@dataclass
class Killer:
    """How many of the services' backends were terminated."""

    kills: int = 0


@contextlib.asynccontextmanager
async def killing_backends(
    admin_url: str, database: str, rng: random.Random, every: float = 0.25
) -> AsyncIterator[Killer]:
    """Terminate one busy backend of the services' role in `database` every
    `every` seconds or so (mid-statement or idle in transaction)."""
    conn = await asyncpg.connect(admin_url)
    killer = Killer()

    async def loop() -> None:
        while True:
            await asyncio.sleep(every * (0.5 + rng.random()))
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM ("
                " SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2"
                " AND state IN ('active', 'idle in transaction')"
                " ORDER BY random() LIMIT 1) AS busy",
                database,
                APP_ROLE,
            )
            killer.kills += int(killed or 0)

    task = asyncio.create_task(loop())
    try:
        yield killer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


async def terminate(admin_url: str, pid: int) -> None:
    """Terminate one backend."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()
