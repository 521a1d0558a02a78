"""Scenario 12 — the security catalogue check (shared/db/catalogue.py), run at every
service start and here in CI: the services' role is no superuser, has no BYPASSRLS,
owns nothing, cannot act as programmes_system; every tenant table has row-level
security enabled and forced with a tenant policy that has USING and WITH CHECK.

Each property is broken in turn in a scratch copy of the database (role attributes
on a scratch role of the test's own: roles are server-wide), and the service's
start must refuse with one line naming the problem. The real migrated schema passes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from shared.db.catalogue import InsecureDatabaseRole, security_violations
from shared.db.uow import TenantUnitOfWork
from shared.fleet import ORCHESTRATOR
from shared.runtime import open_runtime
from shared.settings import Settings
from tests.support.cli import PROGRAMMES, cli_environment
from tests.support.db_chaos import require_superuser
from tests.support.figures import figure
from tests.support.fleet import free_port
from tests.support.scratch_roles import ScratchRole, scratch_role
from tests.support.seed import seed_enrolment, seed_programme
from tests.support.services import Services, with_database


@dataclass(frozen=True)
class Breakage:
    """One way to break the catalogue, and the words the refusal must contain."""

    name: str
    statements: tuple[str, ...]  # run as the superuser in the test's database; {role}
    expected: str  # in the one-line refusal; {role} is the connecting role
    on_scratch_role: bool = False  # role attributes: break a role of the test's own
    also: tuple[str, ...] = ()  # the other problems the same breakage makes


BREAKAGES = [
    Breakage(
        "superuser",
        ("ALTER ROLE {role} SUPERUSER",),
        "role {role} is a superuser",
        True,
        also=("role {role} can act as programmes_system",),  # a superuser is every role
    ),
    Breakage("bypassrls", ("ALTER ROLE {role} BYPASSRLS",), "role {role} has BYPASSRLS", True),
    Breakage(
        "owns-a-table",
        ("ALTER TABLE evaluations OWNER TO {role}",),
        "role {role} owns relation evaluations",
        True,
        also=("role {role} owns relation evaluations_pkey",),
    ),
    Breakage(
        "owns-a-function",
        ("ALTER FUNCTION app_current_tenant() OWNER TO {role}",),
        "role {role} owns function app_current_tenant",
        True,
    ),
    Breakage(
        "member-of-system",
        ("GRANT programmes_system TO {role}",),
        "role {role} can act as programmes_system",
        True,
    ),
    Breakage(
        "rls-disabled",
        ("ALTER TABLE enrolments DISABLE ROW LEVEL SECURITY",),
        "table enrolments: row-level security is not enabled",
    ),
    Breakage(
        "rls-not-forced",
        ("ALTER TABLE certificates NO FORCE ROW LEVEL SECURITY",),
        "table certificates: row-level security is not forced",
    ),
    Breakage(
        "policy-without-with-check",
        (
            "DROP POLICY tenant_isolation ON submissions",
            "CREATE POLICY tenant_isolation ON submissions"
            " USING (tenant_id = app_current_tenant())",
        ),
        "table submissions: no tenant policy with USING and WITH CHECK",
    ),
    Breakage(
        "policy-dropped",
        ("DROP POLICY tenant_isolation ON progress",),
        "table progress: no tenant policy with USING and WITH CHECK",
    ),
    Breakage(
        "policy-not-about-the-tenant",
        (
            "DROP POLICY tenant_isolation ON inbox",
            "CREATE POLICY tenant_isolation ON inbox USING (true) WITH CHECK (true)",
        ),
        "table inbox: no tenant policy with USING and WITH CHECK",
    ),
    Breakage(
        "new-table-without-rls",
        (
            "SET ROLE programmes_owner",
            "CREATE TABLE notes (tenant_id uuid NOT NULL, body text)",
            "GRANT SELECT, INSERT ON notes TO programmes_app",
            "RESET ROLE",
        ),
        "table notes: row-level security is not enabled",
        also=(
            "table notes: row-level security is not forced",
            "table notes: no tenant policy with USING and WITH CHECK",
        ),
    ),
]


@pytest.fixture
async def admin(services: Services, database: str) -> AsyncIterator[asyncpg.Connection]:
    """The superuser, in the test's scratch database."""
    await require_superuser(services.admin_url)
    conn = await asyncpg.connect(with_database(services.admin_url, database))
    try:
        yield conn
    finally:
        await conn.close()


async def _refusal(settings: Settings) -> str:
    """What the service start says when it refuses (fails if it does not)."""
    with pytest.raises(InsecureDatabaseRole) as refused:
        async with open_runtime(ORCHESTRATOR.name, settings):
            pass
    return str(refused.value)


async def _cli_refusal(settings: Settings) -> tuple[int, list[str]]:
    """`programmes run orchestrator` against `settings`: exit code and its error lines."""
    env = cli_environment(settings, PROGRAMMES_HTTP_PORT=str(free_port()))
    process = await asyncio.create_subprocess_exec(
        str(PROGRAMMES),
        "run",
        "orchestrator",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the service started on an insecure database") from None
    assert process.returncode is not None
    return process.returncode, [line for line in err.decode().splitlines() if not _is_log(line)]


def _is_log(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


async def _break(
    admin: asyncpg.Connection, breakage: Breakage, settings: Settings, role: ScratchRole | None
) -> tuple[Settings, list[str]]:
    """Apply the breakage; the settings of the role it concerns, and the problems
    the check must report (the named one first)."""
    name = role.name if role else "programmes_app"
    for statement in breakage.statements:
        await admin.execute(statement.format(role=name))
    connecting = settings.model_copy(update={"database_url": role.url}) if role else settings
    return connecting, [p.format(role=name) for p in (breakage.expected, *breakage.also)]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.name for b in BREAKAGES])
async def test_a_broken_catalogue_is_refused_at_start_in_one_line(
    services: Services,
    database: str,
    settings: Settings,
    admin: asyncpg.Connection,
    breakage: Breakage,
) -> None:
    if breakage.on_scratch_role:
        async with scratch_role(
            services.admin_url, with_database(services.admin_url, database), settings.database_url
        ) as role:
            # Before the breakage the scratch role passes, like the services' role.
            ok = settings.model_copy(update={"database_url": role.url})
            async with open_runtime(ORCHESTRATOR.name, ok):
                pass
            broken, expected = await _break(admin, breakage, settings, role)
            await _assert_refused(broken, expected, breakage)
    else:
        broken, expected = await _break(admin, breakage, settings, None)
        await _assert_refused(broken, expected, breakage)


async def _assert_refused(broken: Settings, expected: list[str], breakage: Breakage) -> None:
    message = await _refusal(broken)
    assert "\n" not in message
    assert sorted(message.split("; ")) == sorted(expected), message  # exactly what was broken
    figure("12-catalogue", breakage=breakage.name, refusal=message)


async def test_the_command_refuses_to_run_with_one_error_line(
    services: Services, database: str, settings: Settings, admin: asyncpg.Connection
) -> None:
    [breakage] = [b for b in BREAKAGES if b.name == "rls-not-forced"]
    broken, expected = await _break(admin, breakage, settings, None)
    code, lines = await _cli_refusal(broken)
    assert code == 1
    assert lines == [f"error: InsecureDatabaseRole: {'; '.join(expected)}"]


async def test_the_migrated_schema_passes_and_the_service_starts(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        assert await security_violations(conn) == []
    async with open_runtime(ORCHESTRATOR.name, settings) as runtime:
        assert runtime.group_id == ORCHESTRATOR.group_id(settings.topic_prefix)


# Found by this tier (fixed: open_policies() in shared/db/sql/catalogue.sql): a tenant
# policy was once enough to pass, but permissive policies are OR-ed, so an extra
# `USING (true)` policy, or a tenant policy weakened with `OR true`, opened every
# tenant's rows to the services' role while the service still started.
GAPS = [
    Breakage(
        "extra-permissive-policy",
        ("CREATE POLICY open_door ON enrolments USING (true) WITH CHECK (true)",),
        "table enrolments",
    ),
    Breakage(
        "tenant-policy-or-true",
        (
            "ALTER POLICY tenant_isolation ON enrolments"
            " USING (tenant_id = app_current_tenant() OR true)"
            " WITH CHECK (tenant_id = app_current_tenant() OR true)",
        ),
        "table enrolments",
    ),
]


@pytest.mark.parametrize("breakage", GAPS, ids=[b.name for b in GAPS])
async def test_a_policy_that_lets_other_tenants_through_is_refused(
    settings: Settings, pool: asyncpg.Pool, admin: asyncpg.Connection, breakage: Breakage
) -> None:
    victim = await seed_programme(pool)
    await seed_enrolment(pool, victim)
    broken, _ = await _break(admin, breakage, settings, None)
    # The breakage is real: another tenant now reads the victim's enrolment.
    async with TenantUnitOfWork(pool, uuid.uuid4()) as uow:
        foreign = await uow.connection.fetchval(
            "SELECT count(*) FROM enrolments WHERE tenant_id = $1", victim.tenant_id
        )
    assert foreign == 1
    message = await _refusal(broken)
    assert "\n" not in message
    assert breakage.expected in message, message
