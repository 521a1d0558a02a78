"""The broker and the database server a benchmark runs on, and what it creates
there: a migrated template database, per-scenario seeded copies, per-run copies,
topic prefixes. Everything created is dropped or deleted when the run ends.

Connections come from the environment (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
MIGRATIONS_DATABASE_URL, DATABASE_ADMIN_URL, as for the tests), else from the
local stack of `programmes dev up` (started if needed, never stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devstack.postgres import NOT_DURABLE
from shared.db.migrate import migrate
from shared.fleet import FLEET
from shared.messaging.clients import connected
from shared.messaging.topics import dead_letter_topic, topic_for

_ENVIRONMENT = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "MIGRATIONS_DATABASE_URL",
    "DATABASE_ADMIN_URL",
)


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@dataclass(frozen=True)
class Connections:
    """Where the broker and the database server are, and as whom to connect."""

    kafka: str
    admin_url: str  # may create databases
    app_url: str  # the services' role (programmes_app: RLS applies)
    owner_url: str  # the schema owner (migrations)

    def app(self, database: str) -> str:
        return with_database(self.app_url, database)


def connections() -> Connections:
    """From the environment when all four variables are set, else the local stack."""
    env = {k: os.environ.get(k) for k in _ENVIRONMENT}
    if not all(env.values()):
        import devstack

        env = dict(devstack.up().env())
    return Connections(
        kafka=str(env["KAFKA_BOOTSTRAP_SERVERS"]),
        admin_url=str(env["DATABASE_ADMIN_URL"]),
        app_url=str(env["DATABASE_URL"]),
        owner_url=str(env["MIGRATIONS_DATABASE_URL"]),
    )


POSTGRES_SETTINGS = ("server_version", *NOT_DURABLE)  # the durability the dev stack trades
KAFKA_SETTINGS = ("group.coordinator.append.linger.ms",)


async def server_settings(conns: Connections) -> dict[str, dict[str, str]]:
    """The server settings that move the figures, to print beside them: PostgreSQL's
    durability (the dev stack turns it off for speed) and how long the broker holds
    an offset commit. Asked of the servers themselves, whichever stack they are."""
    postgresql: dict[str, str] = {}
    conn = await connect(conns.admin_url)
    try:
        for name in POSTGRES_SETTINGS:
            postgresql[name] = str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()
    kafka: dict[str, str] = {}
    async with connected(AIOKafkaAdminClient(bootstrap_servers=conns.kafka)) as admin:
        cluster = await admin.describe_cluster()
        broker = str(cluster["brokers"][0]["node_id"])
        wanted = ConfigResource(ConfigResourceType.BROKER, broker, dict.fromkeys(KAFKA_SETTINGS))
        (response,) = await admin.describe_configs([wanted])  # one broker, one resource
        (resource,) = response.to_object()["resources"]
        for entry in resource["config_entries"]:
            kafka[entry["config_names"]] = str(entry["config_value"])
    return {"postgresql": postgresql, "kafka": kafka}


async def connect(url: str) -> asyncpg.Connection:
    """A plain connection with the services' JSON codecs and no statement timeout
    (seeding a million rows takes longer than the services' pool allows)."""
    conn = await asyncpg.connect(url, command_timeout=None)
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    return conn


@dataclass
class Stack:
    """One benchmark invocation's footprint on the shared servers."""

    conns: Connections
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    template: str = ""
    _databases: list[str] = field(default_factory=list)
    _prefixes: list[str] = field(default_factory=list)

    async def _admin(self, sql: str) -> None:
        admin = await asyncpg.connect(self.conns.admin_url)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    async def migrated_template(self) -> str:
        """The migrated, empty database every other one is copied from (made once)."""
        if not self.template:
            name = f"bench_{self.tag}_template"
            await self._admin(f'CREATE DATABASE "{name}" OWNER programmes_owner')
            self._databases.append(name)
            await asyncio.to_thread(migrate, with_database(self.conns.owner_url, name))
            self.template = name
        return self.template

    async def copy(self, source: str, label: str) -> str:
        """A new database copied from `source` (which must have no connections)."""
        name = f"bench_{self.tag}_{label}_{uuid.uuid4().hex[:6]}"
        await self._admin(
            f'CREATE DATABASE "{name}" TEMPLATE "{source}" '
            "OWNER programmes_owner STRATEGY FILE_COPY"
        )
        self._databases.append(name)
        return name

    async def analyse(self, database: str) -> None:
        """ANALYZE, as their owner, the tables of `database` that hold rows: what
        autovacuum would have done by now on a server that has been running. It never
        analyses a table no row was ever written to, and neither does this: from an
        analysed empty table the planner concludes it stays empty (scans, kept in
        cached plans as the table fills), where a never-analysed one is assumed to
        hold ten pages (index look-ups)."""
        conn = await connect(with_database(self.conns.owner_url, database))
        try:
            tables = await conn.fetch(
                "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'r' AND n.nspname = 'public'"
                " AND pg_relation_size(c.oid) > 0"
            )
            if tables:
                await conn.execute("ANALYZE " + ", ".join(t["name"] for t in tables))
        finally:
            await conn.close()

    async def drop(self, name: str) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._databases.remove(name)

    async def prefix(self, label: str, partitions: int) -> str:
        """A fresh topic prefix with every fleet topic created: `partitions` for the
        consumed ones, fewer for the rest."""
        prefix = f"bench{self.tag}{label}{uuid.uuid4().hex[:4]}."
        self._prefixes.append(prefix)
        consumed = {t for s in FLEET for t in s.consumes}
        produced = {t for s in FLEET for t in s.produces} - consumed
        topics = [NewTopic(topic_for(t, prefix), partitions, 1) for t in sorted(consumed)]
        topics += [NewTopic(topic_for(t, prefix), 3, 1) for t in sorted(produced)]
        topics += [NewTopic(dead_letter_topic(t.name), 1, 1) for t in list(topics)]
        async with connected(AIOKafkaAdminClient(bootstrap_servers=self.conns.kafka)) as admin:
            await admin.create_topics(topics)
        return prefix

    async def forget_prefix(self, prefix: str) -> None:
        """Delete the topics of `prefix`."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.conns.kafka, request_timeout_ms=60000)
        async with connected(admin):
            doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if doomed:
                await admin.delete_topics(doomed, timeout_ms=60000)
        with contextlib.suppress(ValueError):
            self._prefixes.remove(prefix)

    async def close(self) -> None:
        """Drop every database and delete every topic this run still holds."""
        for prefix in list(self._prefixes):
            with contextlib.suppress(Exception):
                await self.forget_prefix(prefix)
        for name in reversed(self._databases):
            with contextlib.suppress(Exception):
                await self.drop(name)


@contextlib.asynccontextmanager
async def opened_stack() -> AsyncIterator[Stack]:
    """A Stack on the configured servers, cleaned up however the run ends."""
    stack = Stack(await asyncio.to_thread(connections))
    try:
        yield stack
    finally:
        await asyncio.shield(stack.close())


@contextlib.asynccontextmanager
async def scratch(stack: Stack, source: str, label: str) -> AsyncIterator[str]:
    """A copy of `source` for one run, dropped afterwards."""
    name = await stack.copy(source, label)
    try:
        yield name
    finally:
        await stack.drop(name)


@contextlib.asynccontextmanager
async def topics(stack: Stack, label: str, partitions: int) -> AsyncIterator[str]:
    """A topic prefix for one run, its topics deleted afterwards."""
    prefix = await stack.prefix(label, partitions)
    try:
        yield prefix
    finally:
        await stack.forget_prefix(prefix)
