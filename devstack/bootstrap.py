"""Create the roles and database of the service on any PostgreSQL, given a superuser DSN.

Used by ``up`` against the local server and by tests against other servers (e.g. a
testcontainers PostgreSQL). Two roles, least privilege:

* ``programmes_owner`` runs the migrations and owns the database and every table;
* ``programmes_app`` is what the services log in as: it owns nothing, cannot bypass
  row-level security and gets table privileges only through the migrations' GRANTs.

Idempotent: existing roles get their attributes and passwords (re)set.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel, ConfigDict

from devstack.aio import run_blocking
from devstack.errors import DevStackError

OWNER_ROLE = "programmes_owner"
APP_ROLE = "programmes_app"
DEFAULT_DATABASE = "programmes"

_OWNER_ATTRIBUTES = "LOGIN NOSUPERUSER CREATEDB CREATEROLE"
_APP_ATTRIBUTES = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT"
# Arbitrary constant: serialises concurrent bootstraps on one server.
_ADVISORY_LOCK_KEY = 0x70726F67


class RolePasswords(BaseModel):
    """Login passwords of the two roles."""

    model_config = ConfigDict(frozen=True)

    owner: str
    app: str

    @classmethod
    def generate(cls) -> RolePasswords:
        """Fresh random passwords (URL-safe, so they need no quoting in DSNs)."""
        return cls(owner=secrets.token_urlsafe(24), app=secrets.token_urlsafe(24))


class DatabaseUrls(BaseModel):
    """DSNs for the three kinds of database clients."""

    model_config = ConfigDict(frozen=True)

    app_url: str  # DATABASE_URL: the services, as programmes_app
    migrations_url: str  # MIGRATIONS_DATABASE_URL: migrations, as programmes_owner
    admin_url: str  # DATABASE_ADMIN_URL: the superuser, for test setup only


def bootstrap_database(
    admin_dsn: str,
    *,
    passwords: RolePasswords | None = None,
    database: str = DEFAULT_DATABASE,
) -> DatabaseUrls:
    """Ensure roles ``programmes_owner``/``programmes_app`` and ``database`` exist.

    ``admin_dsn`` must log in as a superuser; ``postgresql+driver://`` forms (as
    testcontainers returns) are accepted. Passwords default to fresh random ones;
    roles are server-wide, so new passwords apply to every database on that server
    (on the ``up`` stack, pass the stored ones or the exported DSNs stop working).
    Blocking; from async code prefer ``await abootstrap_database(...)``.
    """
    return run_blocking(
        lambda: abootstrap_database(admin_dsn, passwords=passwords, database=database)
    )


async def abootstrap_database(
    admin_dsn: str,
    *,
    passwords: RolePasswords | None = None,
    database: str = DEFAULT_DATABASE,
) -> DatabaseUrls:
    """Async form of ``bootstrap_database``."""
    admin_url = normalise_dsn(admin_dsn)
    roles = passwords or RolePasswords.generate()
    conn = await _connect(admin_url)
    try:
        await _require_superuser(conn)
        # Session-level lock, released when the connection closes.
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        await _ensure_role(conn, OWNER_ROLE, _OWNER_ATTRIBUTES, roles.owner)
        await _ensure_role(conn, APP_ROLE, _APP_ATTRIBUTES, roles.app)
        await _ensure_database(conn, database)
        await _restrict_database(conn, database)
    except asyncpg.PostgresError as exc:
        raise DevStackError(f"bootstrap of database {database!r} failed: {exc}") from None
    finally:
        await conn.close()
    return DatabaseUrls(
        app_url=_with_login(admin_url, APP_ROLE, roles.app, database),
        migrations_url=_with_login(admin_url, OWNER_ROLE, roles.owner, database),
        admin_url=admin_url,
    )


def normalise_dsn(dsn: str) -> str:
    """``postgres://`` and ``postgresql+psycopg2://`` etc. become ``postgresql://``."""
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise DevStackError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(parts._replace(scheme="postgresql"))


def _with_login(admin_url: str, user: str, password: str, database: str) -> str:
    """The admin URL with another login and database (same host, port and options)."""
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{quote(database, safe='')}"))


async def _connect(admin_url: str) -> asyncpg.Connection:
    where = urlsplit(admin_url)
    try:
        return await asyncpg.connect(admin_url, timeout=15)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DevStackError(
            f"cannot connect to PostgreSQL at {where.hostname}:{where.port} "
            f"as {where.username}: {exc}"
        ) from None


async def _require_superuser(conn: asyncpg.Connection) -> None:
    if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        raise DevStackError("bootstrap_database needs a superuser DSN")


async def _run_formatted(conn: asyncpg.Connection, template: str, *args: str) -> None:
    """Execute a statement built server-side by format(), which quotes %I and %L.

    Utility statements (CREATE ROLE ... PASSWORD, CREATE DATABASE) take no bind
    parameters, so identifiers and literals have to be inlined safely.
    """
    placeholders = ", ".join(f"${i}::text" for i in range(1, len(args) + 1))
    statement = await conn.fetchval(f"SELECT format({_literal(template)}, {placeholders})", *args)
    await conn.execute(statement)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _ensure_role(conn: asyncpg.Connection, role: str, attributes: str, pw: str) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    # Attributes are constants of this module, never user input.
    await _run_formatted(conn, f"{verb} ROLE %I WITH {attributes} PASSWORD %L", role, pw)


async def _ensure_database(conn: asyncpg.Connection, database: str) -> None:
    owner = await conn.fetchval(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database
    )
    if owner is None:
        await _run_formatted(conn, "CREATE DATABASE %I OWNER %I", database, OWNER_ROLE)
    elif owner != OWNER_ROLE:
        await _run_formatted(conn, "ALTER DATABASE %I OWNER TO %I", database, OWNER_ROLE)


async def _restrict_database(conn: asyncpg.Connection, database: str) -> None:
    """Only the owner and the app role may connect; PUBLIC gets nothing.

    Schema-level privileges (REVOKE CREATE ON SCHEMA public ...) are the owner's job,
    in the migrations.
    """
    await _run_formatted(conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", database)
    await _run_formatted(conn, "GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I", database, APP_ROLE)
