"""The verification page's token look-ups under concurrency, on the real database:
concurrent requests share statements, and each gets exactly its own answer."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.certifier import verification
from services.certifier.adapters.certificates import Verification, verify, verify_many
from services.certifier.verification import TokenLookups
from shared.db.uow import TenantUnitOfWork
from tests.support.certificates import seed_many_certified
from tests.support.programmes import publish_sample


async def tokens(pool: asyncpg.Pool, count: int) -> list[str]:
    sample = await publish_sample(pool, prerequisites=False)
    issued = datetime.now(UTC) - timedelta(days=3)
    await seed_many_certified(
        pool, sample, count, first_issued_at=issued, spacing=timedelta(hours=1)
    )
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        return [r[0] for r in await uow.connection.fetch("SELECT public_token FROM certificates")]


async def test_concurrent_look_ups_share_statements_and_get_their_own_answers(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = await tokens(pool, 20)
    unknown = [secrets.token_urlsafe(24) for _ in range(10)]
    asked = [*known, *unknown, *known[:5]]  # some asked twice at once
    statements: list[int] = []

    async def counted(conn: Any, batch: list[str]) -> dict[str, Verification]:
        statements.append(len(batch))
        return await verify_many(conn, batch)

    monkeypatch.setattr(verification, "verify_many", counted)
    lookups = TokenLookups(pool, max_batch=16, max_in_flight=1)

    answers = await asyncio.gather(*(lookups.verify(token) for token in asked))

    async with pool.acquire() as conn:
        expected = [await verify(conn, token) for token in asked]
    assert answers == expected
    assert sum(a is None for a in answers) == len(unknown)
    assert statements[0] == 1  # the first request waited for nobody
    assert len(statements) <= 1 + -(-(len(asked) - 1) // 16)
    assert max(statements) <= 16


async def test_a_failed_statement_fails_the_requests_that_shared_it(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(conn: Any, batch: list[str]) -> dict[str, Verification]:
        raise asyncpg.PostgresError("the database said no")

    monkeypatch.setattr(verification, "verify_many", broken)
    lookups = TokenLookups(pool, max_in_flight=1)
    results = await asyncio.gather(
        *(lookups.verify(secrets.token_urlsafe(24)) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, asyncpg.PostgresError) for r in results)
