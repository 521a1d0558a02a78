"""A Kafka broker and PostgreSQL server of a test's own (the devstack API on free
ports and a temporary state dir), for fault tests that stop and restart them.
The shared stack other tests use is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

import devstack
from devstack import kafka, postgres
from devstack.paths import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_PG_PORT,
    KAFKA_CONTROLLER_PORT_ENV,
    KAFKA_PORT_ENV,
    PG_PORT_ENV,
    STATE_DIR_ENV,
)
from shared.db.migrate import migrate
from tests.support.fleet import free_port
from tests.support.services import with_database

# Ports of the shared stacks (local and CI): never ours.
_RESERVED = {DEFAULT_KAFKA_PORT, DEFAULT_KAFKA_CONTROLLER_PORT, DEFAULT_PG_PORT, 25432, 29092}


@dataclass(frozen=True)
class Database:
    """One database on the private server, as the three roles see it."""

    admin_url: str
    app_url: str
    owner_url: str


@dataclass
class PrivateStack:
    """The private servers; restarts are measured (seconds of unavailability)."""

    state_dir: Path
    env: dict[str, str]  # the devstack settings that point at this stack
    info: devstack.StackInfo

    @property
    def bootstrap(self) -> str:
        return self.info.kafka.bootstrap_servers

    @contextlib.contextmanager
    def _selected(self) -> Iterator[None]:
        """Point the devstack API at this stack for the duration of a call."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _up(self) -> None:
        with self._selected():
            self.info = devstack.up()

    async def restart_kafka(self, pause: float = 0.0) -> float:
        """Stop the broker (SIGTERM), wait `pause` s, start it; returns the seconds it was down."""

        def restart() -> float:
            started = time.monotonic()
            kafka.stop(kafka.paths_for(self.state_dir))
            time.sleep(pause)
            self._up()
            return time.monotonic() - started

        return await asyncio.to_thread(restart)

    async def restart_postgres(self, pause: float = 0.0) -> float:
        """`pg_ctl stop -m fast` (every session is cut), wait `pause` s, start again;
        returns the seconds it was down."""

        def restart() -> float:
            started = time.monotonic()
            postgres.stop(self.state_dir, postgres.paths_for(self.state_dir))
            time.sleep(pause)
            self._up()
            return time.monotonic() - started

        return await asyncio.to_thread(restart)

    async def new_database(self) -> Database:
        """A fresh database migrated by `programmes migrate`'s code, as the owner."""
        name = f"faults_{uuid.uuid4().hex[:12]}"
        urls = self.info.database
        admin = await asyncpg.connect(urls.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER programmes_owner')
        finally:
            await admin.close()
        owner = with_database(urls.migrations_url, name)
        await asyncio.to_thread(migrate, owner)
        return Database(
            with_database(urls.admin_url, name), with_database(urls.app_url, name), owner
        )


def _ports() -> tuple[int, int, int]:
    while True:
        ports = (free_port(), free_port(), free_port())
        if len(set(ports)) == 3 and not _RESERVED & set(ports):
            return ports


@contextlib.contextmanager
def private_stack() -> Iterator[PrivateStack]:
    """Start a private stack; stop and delete it at the end."""
    # World-traversable: PostgreSQL runs as an unprivileged user under root.
    state = Path(tempfile.mkdtemp(prefix="programmes-faults-", dir="/tmp"))
    state.chmod(0o755)
    kafka_port, controller_port, pg_port = _ports()
    env = {
        STATE_DIR_ENV: str(state),
        KAFKA_PORT_ENV: str(kafka_port),
        KAFKA_CONTROLLER_PORT_ENV: str(controller_port),
        PG_PORT_ENV: str(pg_port),
    }
    stack = PrivateStack(state, env, info=None)  # type: ignore[arg-type]
    try:
        stack._up()
        yield stack
    finally:
        with stack._selected():
            devstack.down(purge=True)
        shutil.rmtree(state, ignore_errors=True)
