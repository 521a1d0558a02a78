"""Where the tests' Kafka and PostgreSQL come from, in this order:

1. the environment: KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (then also
   MIGRATIONS_DATABASE_URL and DATABASE_ADMIN_URL, to create test databases);
2. testcontainers, when a Docker engine answers;
3. the local stack of `programmes dev up` (started if needed, reused if running).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


@dataclass(frozen=True)
class Services:
    """Connections the integration tests use."""

    kafka_bootstrap_servers: str
    admin_url: str  # may create databases (a superuser, or a role with CREATEDB)
    app_url: str  # the services' role
    owner_url: str  # the schema owner
    origin: str


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _from_environment() -> Services | None:
    kafka, app = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if not (kafka and app):
        return None
    owner = os.environ.get("MIGRATIONS_DATABASE_URL")
    admin = os.environ.get("DATABASE_ADMIN_URL")
    if not (owner and admin):
        raise pytest.UsageError(
            "DATABASE_URL is set: set MIGRATIONS_DATABASE_URL (schema owner) and "
            "DATABASE_ADMIN_URL (may create databases) too, or unset all three"
        )
    return Services(kafka, admin, app, owner, origin="environment")


def _docker_answers() -> bool:
    """Whether a Docker engine answers its ping (asked over a socket we close)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            parts = urlsplit(host)
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (parts.hostname or "localhost", parts.port or 2375)
        else:
            return False
        with probe:
            probe.settimeout(3)
            probe.connect(address)
            probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = probe.recv(1024).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line + b" "
    except OSError:
        return False


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    from devstack import RolePasswords, bootstrap_database

    with (
        KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as kafka,
        PostgresContainer("postgres:17", driver=None) as postgres,
    ):
        urls = bootstrap_database(postgres.get_connection_url(), passwords=RolePasswords.generate())
        yield Services(
            kafka.get_bootstrap_server(),
            urls.admin_url,
            urls.app_url,
            urls.migrations_url,
            origin="testcontainers",
        )


def _from_local_stack() -> Services:
    import devstack

    info = devstack.up()
    env = info.env()
    return Services(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        env["DATABASE_ADMIN_URL"],
        env["DATABASE_URL"],
        env["MIGRATIONS_DATABASE_URL"],
        origin="local stack",
    )


@contextlib.contextmanager
def provide_services() -> Iterator[Services]:
    """The services for this test session, by the order of precedence above."""
    from_env = _from_environment()
    if from_env is not None:
        yield from_env
    elif _docker_answers():
        with _from_testcontainers() as services:
            yield services
    else:
        yield _from_local_stack()


@contextlib.asynccontextmanager
async def database_copy(
    admin_url: str, source: str, prefix: str = "programmes_test"
) -> AsyncIterator[str]:
    """A new database copied from `source` (a template, or a database no one is
    connected to): its name; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{source}" '
            "OWNER programmes_owner STRATEGY FILE_COPY"
        )
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
