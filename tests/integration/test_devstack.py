"""The dev stack's public API against the local stack (`programmes dev up`)."""

from __future__ import annotations

import time

import asyncpg
import pytest

import devstack

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_reuses_the_running_servers() -> None:
    first = devstack.up()  # starts the stack if it is not running yet

    started = time.monotonic()
    second = devstack.up()
    elapsed = time.monotonic() - started

    assert second.kafka.reused and second.postgres.reused
    assert (second.kafka.pid, second.postgres.pid) == (first.kafka.pid, first.postgres.pid)
    assert (second.kafka.port, second.postgres.port) == (first.kafka.port, first.postgres.port)
    assert second.env() == first.env()
    assert elapsed < 5, f"a second up() took {elapsed:.1f} s"


def test_status_reports_both_servers_running() -> None:
    info = devstack.up()

    result = devstack.status()

    by_name = {component.name: component for component in result.components}
    assert result.running
    assert by_name["kafka"].pid == info.kafka.pid
    assert by_name["postgres"].pid == info.postgres.pid


async def test_database_url_logs_in_as_the_unprivileged_app_role() -> None:
    # Called from a running event loop on purpose: up() must cope with that too.
    env = devstack.up().env()

    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        role = await conn.fetchrow(
            "SELECT current_user AS login, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole"
            " FROM pg_roles WHERE rolname = current_user"
        )
        owns_database = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database"
            " WHERE datname = current_database()"
        )
    finally:
        await conn.close()

    assert role is not None
    assert role["login"] == "programmes_app"
    assert role["rolsuper"] is False
    assert role["rolbypassrls"] is False
    assert role["rolcreatedb"] is False
    assert role["rolcreaterole"] is False
    assert owns_database is False


async def test_migrations_url_logs_in_as_the_database_owner() -> None:
    env = devstack.up().env()

    conn = await asyncpg.connect(env["MIGRATIONS_DATABASE_URL"])
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS login, pg_get_userbyid(datdba) AS owner, rolsuper"
            " FROM pg_database, pg_roles"
            " WHERE datname = current_database() AND rolname = current_user"
        )
    finally:
        await conn.close()

    assert row is not None
    assert row["login"] == row["owner"] == "programmes_owner"
    assert row["rolsuper"] is False
