"""Fixtures for the integration tiers: real Kafka and PostgreSQL (see
tests/support/services.py for where they come from).

Isolation stays fast: the schema is migrated once into a template database and
every test gets its own copy (CREATE DATABASE ... TEMPLATE, a file copy of a
few MB), and its own topic prefix on the shared broker.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.db.migrate import migrate
from shared.db.pool import create_pool
from shared.settings import Settings
from tests.support.kafka import delete_topics_with_prefix
from tests.support.services import Services, database_copy, provide_services, with_database


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect after every test, so that a client left unclosed fails the test that
    leaked it (ResourceWarning is an error here), not whichever later test the
    garbage collector happens to run in."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Kafka and PostgreSQL for this session."""
    with provide_services() as found:
        yield found


@pytest.fixture(scope="session")
async def template_database(services: Services) -> AsyncIterator[str]:
    """A database migrated once, cloned by every test."""
    name = f"programmes_tpl_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER programmes_owner')
        migrate(with_database(services.owner_url, name))
        await admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true')
        yield name
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database(services: Services, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own (its name)."""
    async with database_copy(services.admin_url, template_database) as name:
        yield name


@pytest.fixture
async def twin_settings(
    services: Services, template_database: str, settings: Settings
) -> AsyncIterator[Settings]:
    """`settings` on a second fresh database, for tests that compare two paths."""
    async with database_copy(services.admin_url, template_database) as name:
        yield settings.model_copy(update={"database_url": with_database(services.app_url, name)})


@pytest.fixture
async def settings(services: Services, database: str) -> AsyncIterator[Settings]:
    """Settings pointing at this test's database and topic prefix; the test's
    topics are deleted afterwards (thousands of leftovers slow a shared broker)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield Settings(
        database_url=with_database(services.app_url, database),
        migrations_database_url=with_database(services.owner_url, database),
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        topic_prefix=prefix,
        db_pool_min_size=1,
        db_pool_max_size=5,
    )
    await delete_topics_with_prefix(services.kafka_bootstrap_servers, prefix)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the services' role on this test's database."""
    opened = await create_pool(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def owner_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner (still subject to FORCE ROW LEVEL SECURITY)."""
    assert settings.migrations_database_url is not None
    conn = await asyncpg.connect(settings.migrations_database_url)
    try:
        yield conn
    finally:
        await conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/faults need the real stack."""
    for item in items:
        if "/integration/" in str(item.path) or "/faults/" in str(item.path):
            item.add_marker(pytest.mark.integration)
