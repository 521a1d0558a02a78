"""The security catalogue check: the services' database role must be unable to
step outside row-level security. Services refuse to start when it fails."""

from __future__ import annotations

from pathlib import Path

from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries

_queries = load_queries(Path(__file__).with_name("sql") / "catalogue.sql")


class InsecureDatabaseRole(Exception):
    """The role the service connects as could bypass tenant isolation."""


async def security_violations(conn: Connection) -> list[str]:
    """Every way the connected role could escape tenant isolation (empty when sound)."""
    return [*await _role_problems(conn), *await _table_problems(conn)]


async def _role_problems(conn: Connection) -> list[str]:
    problems: list[str] = []
    role = await _queries.role_attributes(conn)
    if role["superuser"]:
        problems.append(f"role {role['role']} is a superuser")
    if role["bypass_rls"]:
        problems.append(f"role {role['role']} has BYPASSRLS")
    for row in await fetch_all(_queries.owned_objects(conn)):
        problems.append(f"role {role['role']} owns {row['kind']} {row['name']}")
    if await _queries.system_role_member(conn):
        problems.append(f"role {role['role']} can act as programmes_system")
    return problems


async def _table_problems(conn: Connection) -> list[str]:
    problems: list[str] = []
    tables = await fetch_all(_queries.tenant_tables(conn))
    if not tables:
        problems.append("no tenant tables found: is the database migrated?")
    for table in tables:
        if not table["rls_enabled"]:
            problems.append(f"table {table['name']}: row-level security is not enabled")
        if not table["rls_forced"]:
            problems.append(f"table {table['name']}: row-level security is not forced")
        if not table["tenant_policy"]:
            problems.append(f"table {table['name']}: no tenant policy with USING and WITH CHECK")
    unprotected = {t["name"] for t in tables if not t["tenant_policy"]}
    problems.extend(
        f"table {row['name']}: policy {row['policy']} lets rows of other tenants through"
        " (permissive policies are OR-ed with the tenant policy)"
        for row in await fetch_all(_queries.open_policies(conn))
        if row["name"] not in unprotected  # already reported above
    )
    return problems


async def assert_secure(conn: Connection) -> None:
    """Raise InsecureDatabaseRole listing every problem, if there is any."""
    problems = await security_violations(conn)
    if problems:
        raise InsecureDatabaseRole("; ".join(problems))
