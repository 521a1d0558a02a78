"""Tenancy is enforced by the database itself: row-level security, forced, on
every tenant table, for a role that owns nothing and cannot bypass it."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.db.catalogue import _queries as catalogue
from shared.db.catalogue import security_violations
from shared.db.queries import fetch_all
from shared.db.uow import TenantUnitOfWork, UnitOfWork
from tests.support.seed import seed_every_table, seed_programme

TENANT_TABLES = {
    "tenants",
    "evaluations",
    "programmes",
    "programme_versions",
    "programme_elective_groups",
    "programme_requirements",
    "requirement_prerequisites",
    "enrolments",
    "progress",
    "progress_history",
    "submissions",
    "submission_scores",
    "assignments",
    "certificates",
    "inbox",
    "outbox",
    "enrolment_history",
}


async def test_the_services_role_passes_the_security_catalogue_check(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        role = await catalogue.role_attributes(conn)
        assert role["role"] == "programmes_app"
        assert not role["superuser"]
        assert not role["bypass_rls"]
        assert await fetch_all(catalogue.owned_objects(conn)) == []
        assert await security_violations(conn) == []


async def test_the_owner_role_fails_the_check(owner_connection: asyncpg.Connection) -> None:
    problems = await security_violations(owner_connection)
    assert any("owns relation enrolments" in p for p in problems)


async def test_every_tenant_table_has_forced_rls_with_a_tenant_policy(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        tables = {row["name"]: row for row in await fetch_all(catalogue.tenant_tables(conn))}
    assert set(tables) == TENANT_TABLES
    for name, row in tables.items():
        assert row["rls_enabled"], name
        assert row["rls_forced"], name
        assert row["tenant_policy"], name


async def _count_per_table(uow: UnitOfWork) -> dict[str, int]:
    return {
        table: await uow.connection.fetchval(f"SELECT count(*) FROM {table}")
        for table in sorted(TENANT_TABLES)
    }


async def test_a_tenant_sees_and_changes_only_its_own_rows(pool: asyncpg.Pool) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    await seed_every_table(pool, tenant_a)
    await seed_every_table(pool, tenant_b)
    async with TenantUnitOfWork(pool, tenant_b) as uow:
        counts_b = await _count_per_table(uow)
    assert all(counts_b[t] >= 1 for t in TENANT_TABLES), counts_b

    async with TenantUnitOfWork(pool, tenant_a) as uow:
        conn = uow.connection
        for table in sorted(TENANT_TABLES):
            column = "id" if table == "tenants" else "tenant_id"
            foreign = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} <> $1", tenant_a
            )
            assert foreign == 0, table
            own = await conn.fetchval(f"SELECT count(*) FROM {table}")
            assert own == counts_b[table], table  # same seed, same shape
            for statement in (
                f"UPDATE {table} SET {column} = {column} WHERE {column} = $1",
                f"DELETE FROM {table} WHERE {column} = $1",
            ):
                privilege = statement.split()[0]
                if await conn.fetchval("SELECT has_table_privilege($1, $2)", table, privilege):
                    result = await conn.execute(statement, tenant_b)
                    assert result.endswith(" 0"), (table, statement, result)


async def test_inserting_a_row_for_another_tenant_fails(pool: asyncpg.Pool) -> None:
    other = await seed_programme(pool)
    mine = await seed_programme(pool)
    async with TenantUnitOfWork(pool, mine.tenant_id) as uow:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await uow.connection.execute(
                "INSERT INTO evaluations (tenant_id, id, type, title)"
                " VALUES ($1, $2, 'knowledge', 'x')",
                other.tenant_id,
                uuid.uuid4(),
            )


async def test_without_a_tenant_nothing_is_visible_even_to_the_owner(
    pool: asyncpg.Pool, owner_connection: asyncpg.Connection
) -> None:
    await seed_every_table(pool, uuid.uuid4())
    async with UnitOfWork(pool) as uow:
        assert set((await _count_per_table(uow)).values()) == {0}
    for table in sorted(TENANT_TABLES):
        assert await owner_connection.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    async with UnitOfWork(pool) as uow:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await uow.connection.execute("INSERT INTO tenants (id) VALUES ($1)", uuid.uuid4())


async def test_a_requirement_cannot_name_another_tenants_evaluation(pool: asyncpg.Pool) -> None:
    other = await seed_programme(pool)
    mine = await seed_programme(pool)
    async with TenantUnitOfWork(pool, mine.tenant_id, actor_role="admin") as uow:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await uow.connection.execute(
                "INSERT INTO programme_requirements (tenant_id, id, programme_id, version, key,"
                " name, evaluation_id, min_score, sort_order)"
                " VALUES ($1, $2, $3, 1, 'stolen', 'Stolen', $4, 50, 9)",
                mine.tenant_id,
                uuid.uuid4(),
                mine.programme_id,
                other.evaluation_id,
            )


async def test_the_tenant_setting_never_outlives_its_transaction(
    settings: object, pool: asyncpg.Pool
) -> None:
    tenant = uuid.uuid4()
    async with TenantUnitOfWork(pool, tenant) as uow:
        assert await uow.connection.fetchval("SELECT app_current_tenant()") == tenant
    async with TenantUnitOfWork(pool, tenant) as uow:
        await uow.commit()
    for _ in range(pool.get_size() + 1):  # every pooled connection, after both outcomes
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT app_current_tenant()") is None
