"""The public verification page: GET /certs/verify/{token} (and /api/v1/...).

No authentication and no tenant context: the lookup goes through the one
narrow database function `verify_certificate`, which returns display fields
only. Unknown and malformed tokens get the same 404. Failed look-ups are
rate-limited per client, which makes enumerating tokens (already hopeless at
192 bits) visibly throttled.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from services.certifier.adapters.certificates import Verification, verify_many
from services.certifier.domain import holder_name, verification_status

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
HEADERS = {
    # The token is in the URL: never leak it onward, never cache a status that may change.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}
_RAW_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items()]


class _PageJSON(JSONResponse):
    """A JSON answer of the page, its fixed headers encoded once (not per response)."""

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        self.raw_headers = [
            (b"content-length", str(len(self.body)).encode("latin-1")),
            (b"content-type", b"application/json"),
            *_RAW_HEADERS,
        ]


_templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def public_view(found: Verification, now: datetime) -> dict[str, Any]:
    """The allow-listed fields a verifier sees (the JSON body, and the page's data)."""
    return {
        "programme": found.programme_name,
        "holder": holder_name(found.holder_display_name, found.holder_name_rule),
        "issued_at": found.issued_at.isoformat(),
        "expires_at": None if found.expires_at is None else found.expires_at.isoformat(),
        "status": verification_status(found.status, found.expires_at, now),
    }


class FailedLookupLimiter:
    """At most `per_minute` failed look-ups per client in a moving minute.

    Most clients never fail: a client with no failure in the last minute is let
    through without asking the moving window (the common case costs a dict look-up).
    """

    WINDOW = 60.0
    _PRUNE_AT = 10_000  # clients remembered before forgetting those quiet for a minute

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._clock = clock
        self._last_failure: dict[str, float] = {}

    async def allowed(self, client: str) -> bool:
        """Whether this client may look up again."""
        last = self._last_failure.get(client)
        if last is None or self._clock() - last > self.WINDOW:
            return True
        return bool(await self._limiter.test(self._limit, client))

    async def failed(self, client: str) -> None:
        """Count a failed look-up against the client."""
        now = self._clock()
        if len(self._last_failure) >= self._PRUNE_AT:
            self._last_failure = {
                c: t for c, t in self._last_failure.items() if now - t <= self.WINDOW
            }
        self._last_failure[client] = now
        await self._limiter.hit(self._limit, client)


class TokenLookups:
    """Token look-ups for concurrent requests, sharing statements.

    A look-up starts at once while fewer than `max_in_flight` are running (so a
    lone request waits for nothing); requests arriving meanwhile queue up and go
    together, up to `max_batch` tokens, in the next statement. Under load that is
    one pooled connection, one statement and one connection reset for many
    requests instead of one each.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 64, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[str, asyncio.Future[Verification | None]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def verify(self, token: str) -> Verification | None:
        """What `token` shows, or None for an unknown token."""
        answer: asyncio.Future[Verification | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((token, answer))
        if len(self._running) < self._max_in_flight:
            self._start()
        return await answer

    def _start(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        task = asyncio.create_task(self._look_up(batch))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._waiting and len(self._running) < self._max_in_flight:
            self._start()

    async def _look_up(self, batch: list[tuple[str, asyncio.Future[Verification | None]]]) -> None:
        try:
            async with self._pool.acquire() as conn:
                found = await verify_many(conn, list({token for token, _ in batch}))
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as error:  # the requests fail as they would on their own
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
        else:
            for token, answer in batch:
                if not answer.done():
                    answer.set_result(found.get(token))


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _not_found(request: Request) -> Response:
    if _wants_html(request):
        return _templates.TemplateResponse(
            request, "not_found.html", {}, status_code=404, headers=HEADERS
        )
    return _PageJSON({"error": "certificate not found"}, status_code=404)


def verification_routes(
    pool: asyncpg.Pool,
    *,
    failed_per_minute: int = 30,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Route]:
    """The two verification routes, bound to a pool of the services' role."""
    limiter = FailedLookupLimiter(failed_per_minute)
    lookups = TokenLookups(pool)

    async def verify_page(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        if not await limiter.allowed(client):
            return JSONResponse(
                {"error": "too many failed look-ups, retry later"},
                status_code=429,
                headers={**HEADERS, "Retry-After": "60"},
            )
        token = request.path_params["token"]
        found = None
        if TOKEN.fullmatch(token):
            found = await lookups.verify(token)
        if found is None:
            await limiter.failed(client)
            return _not_found(request)
        view = public_view(found, clock())
        if _wants_html(request):
            context = {"view": view, "badge_image_url": found.badge_image_url}
            return _templates.TemplateResponse(
                request, "certificate.html", context, headers=HEADERS
            )
        return _PageJSON(view)

    return [
        # {token:path}: whatever follows (slashes, nothing) is a token that gets the
        # same 404 as any other unknown one, counted by the limiter.
        Route("/certs/verify/{token:path}", verify_page, methods=["GET"]),
        Route("/api/v1/certs/verify/{token:path}", verify_page, methods=["GET"]),
    ]
