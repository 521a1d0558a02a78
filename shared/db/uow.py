"""Units of work: one transaction each, rolled back unless committed.

The tenant unit of work is the only way the services touch tenant data:
acquire a connection, open a transaction, set `app.tenant_id` for that
transaction only (`set_config(..., true)`). Row-level security does the rest:
the transaction sees and writes only that tenant's rows, and the setting cannot
leak into the next transaction that borrows the same connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import TracebackType
from typing import Self
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.db.pool import end_transaction

_ROLE = re.compile(r"[a-z_]{1,32}")
SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
"""Sets the tenant for the current transaction on a connection of one's own."""


class UnitOfWork:
    """A transaction on a pooled connection, rolled back unless `commit()` is called.

    With no tenant set, row-level security hides every tenant row: only the
    cross-tenant SECURITY DEFINER functions (outbox relay, assignment dispatch,
    renewer scans) answer. Use `TenantUnitOfWork` for tenant data.

    The transaction is opened with one round trip (BEGIN and the settings sent as
    one simple query) and ended with one (COMMIT or ROLLBACK, with the session reset
    the pool would otherwise do on release: see `shared.db.pool.ResettingConnection`).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: PoolConnectionProxy | None = None
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never on rollback):
        e.g. wake a loop that should see the rows just written."""
        self._after_commit.append(callback)

    @property
    def connection(self) -> PoolConnectionProxy:
        """The connection of the open transaction."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    def _begin(self) -> str:
        """The statements that open the transaction (one simple query)."""
        return "BEGIN"

    async def __aenter__(self) -> Self:
        begin = self._begin()
        conn = await self._pool.acquire()
        try:
            await conn.execute(begin)
        except BaseException:
            try:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
            finally:
                await self._pool.release(conn)
            raise
        self._conn, self._committed = conn, False
        self._after_commit = []
        return self

    async def commit(self) -> None:
        """Commit the transaction."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        await end_transaction(self._conn, "COMMIT")
        self._committed = True
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._committed:
                await end_transaction(conn, "ROLLBACK")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # A broken connection has rolled back by itself; the pool discards it.
            pass
        finally:
            await self._pool.release(conn)


class TenantUnitOfWork(UnitOfWork):
    """One transaction under one tenant, rolled back unless committed.

    `actor_role` (e.g. "admin", "author") is what database policies check before
    programme definitions may change; services that only read them pass none.
    """

    def __init__(self, pool: asyncpg.Pool, tenant_id: UUID, actor_role: str | None = None) -> None:
        super().__init__(pool)
        self.tenant_id = tenant_id
        self.actor_role = actor_role

    def _begin(self) -> str:
        # Literals, not parameters (a simple query takes none): a UUID's text and
        # a role name checked against [a-z_] cannot carry anything else.
        tenant = UUID(str(self.tenant_id))
        begin = f"BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true)"
        if self.actor_role is not None:
            if not _ROLE.fullmatch(self.actor_role):
                raise ValueError(f"not a role name: {self.actor_role!r}")
            begin += f"; SELECT set_config('app.actor_role', '{self.actor_role}', true)"
        return begin
