"""The verification page as a person sees it, in a real headless Chromium
(Debian's package, driven by Playwright): the status is unmistakable for each
of valid, expired and revoked, and nothing internal is on the page."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from starlette.applications import Starlette

from services.certifier.verification import verification_routes
from shared.db.uow import TenantUnitOfWork
from shared.http import HttpServer
from tests.support.programmes import Sample, publish_sample

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ISSUED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser tests (see .ci/run)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


async def _certificate(pool: asyncpg.Pool, sample: Sample, status: str) -> tuple[str, list[str]]:
    """A certified enrolment with a certificate in `status`; returns its token and its ids."""
    enrolment, user, token = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().hex + "x"
    certificate = uuid.uuid4()
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        conn = uow.connection
        snapshot = await conn.fetchval("SELECT definition FROM programme_versions")
        await conn.execute(
            "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
            " status, snapshot, user_display_name, enrolled_at, completed_at, certified_at,"
            " created_by_event_id) VALUES ($1, $2, $3, $4, 1, 'certified', $5,"
            " 'grace.hopper@example.com', $6, $6, $6, $7)",
            sample.tenant_id,
            enrolment,
            user,
            sample.programme_id,
            snapshot,
            ISSUED,
            uuid.uuid4(),
        )
        await conn.execute(
            "INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, programme_id,"
            " programme_version, status, issued_at, expires_at, public_token,"
            " holder_display_name, completion_event_id, revoked_at, expired_at)"
            " VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, 'Grace Brewster Hopper', $10,"
            " CASE WHEN $6 = 'revoked' THEN now() END, CASE WHEN $6 = 'expired' THEN now() END)",
            sample.tenant_id,
            certificate,
            enrolment,
            user,
            sample.programme_id,
            status,
            ISSUED,
            ISSUED + timedelta(days=3650),
            token,
            uuid.uuid4(),
        )
        await uow.commit()
    return token, [str(sample.tenant_id), str(enrolment), str(user), str(certificate)]


@pytest.fixture
async def page_server(pool: asyncpg.Pool) -> AsyncIterator[str]:
    server = HttpServer(Starlette(routes=verification_routes(pool)), "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("active", "Valid certificate"),
        ("expired", "Expired certificate"),
        ("revoked", "Revoked certificate"),
    ],
)
async def test_the_page_shows_the_status_and_nothing_internal(
    pool: asyncpg.Pool, page_server: str, status: str, label: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    sample = await publish_sample(pool, badge_image_url="https://example.com/badge.png")
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        await uow.connection.execute("UPDATE tenants SET holder_name_rule = 'full'")
        await uow.commit()
    token, internal_ids = await _certificate(pool, sample, status)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            response = await page.goto(f"{page_server}/certs/verify/{token}")
            assert response is not None and response.status == 200
            banner = page.get_by_role("status")
            assert await banner.is_visible()
            assert label in await banner.inner_text()
            heading = page.get_by_role("heading", level=1)
            assert await heading.inner_text() == "Certified Safety Inspector 2025"
            assert await page.get_by_text("Grace Brewster Hopper").is_visible()
            assert (
                await page.get_by_alt_text("Badge of Certified Safety Inspector 2025").count() == 1
            )
            html = await page.content()
            await page.screenshot(path=str(tmp_path / f"{status}.png"), full_page=True)
        finally:
            await browser.close()
    leaked = [i for i in [*internal_ids, "grace.hopper@example.com", token[:-1] + "?"] if i in html]
    assert leaked == []


async def test_an_unknown_token_gets_the_not_found_page(page_server: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            response = await page.goto(f"{page_server}/certs/verify/{'z' * 40}")
            assert response is not None and response.status == 404
            assert (
                await page.get_by_role("heading", level=1).inner_text() == "Certificate not found"
            )
        finally:
            await browser.close()
