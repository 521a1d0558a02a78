"""The renewer process: a pass every interval plus the outbox relay
(`programmes run renewer`), or one pass publishing its outbox rows as it commits
them, then draining what is left (`programmes renew`, the Kubernetes CronJob's command)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import asyncpg

from services.renewer.renewer import PassResult, run_pass
from shared.db.catalogue import assert_secure
from shared.db.pool import create_pool
from shared.fleet import RENEWER
from shared.messaging.producer import KafkaSink
from shared.outbox import OutboxRelay
from shared.retry import retry_transient
from shared.runtime import open_runtime, serve
from shared.settings import Settings

DEFAULT_HTTP_PORT = 8082
DEFAULT_INTERVAL_SECONDS = 3600.0
INTERVAL_VARIABLE = "PROGRAMMES_RENEW_INTERVAL"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def renew_interval(environ: dict[str, str] | None = None) -> float:
    """Seconds between passes in loop mode (`PROGRAMMES_RENEW_INTERVAL`, default 3600)."""
    raw = (os.environ if environ is None else environ).get(INTERVAL_VARIABLE)
    if raw is None or raw.strip() == "":
        return DEFAULT_INTERVAL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{INTERVAL_VARIABLE} must be a positive number of seconds, not {raw!r}")
    return seconds


class RenewalLoop:
    """Runs a pass at the clock's `now`, then waits `interval` seconds, forever."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        interval: float,
        clock: Callable[[], datetime] = _utcnow,
        on_events_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._interval = interval
        self._clock = clock
        self._on_events_enqueued = on_events_enqueued

    async def run(self) -> None:
        """Pass after pass (until cancelled)."""
        while True:
            await run_pass(
                self._pool,
                self._settings,
                self._clock(),
                on_events_enqueued=self._on_events_enqueued,
            )
            await asyncio.sleep(self._interval)


async def run(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    interval: float | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> None:
    """Run the renewer in loop mode until stopped (SIGTERM, or `stop`)."""
    every = renew_interval() if interval is None else interval
    async with open_runtime(RENEWER.name, settings) as runtime:
        loop = RenewalLoop(runtime.pool, settings, every, clock, runtime.relay.wake)
        port = DEFAULT_HTTP_PORT if settings.http_port is None else settings.http_port
        await serve(runtime, [loop.run], port=port, stop=stop)


async def run_once(settings: Settings, now: datetime) -> PassResult:
    """One pass at `now`, publishing the outbox meanwhile and draining it at the end,
    so that what the pass wrote is on Kafka before the command exits."""
    pool = await retry_transient(partial(create_pool, settings), maximum=2.0)
    try:
        async with pool.acquire() as conn:
            await assert_secure(conn)
        sink = KafkaSink(settings.kafka_bootstrap_servers, client_id=f"programmes-{RENEWER.name}")
        relay = OutboxRelay(pool, sink)
        written, passed = asyncio.Event(), asyncio.Event()
        # The broker is connected to and published to while the pass runs (a pass
        # does not wait for Kafka: if it is down, only the publishing waits).
        publishing = asyncio.create_task(_publish(sink, relay, written, passed))
        try:
            result = await run_pass(pool, settings, now, on_events_enqueued=written.set)
        except BaseException:
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing
            raise
        passed.set()
        await publishing
    finally:
        await pool.close()
    return result


async def _publish(
    sink: KafkaSink, relay: OutboxRelay, written: asyncio.Event, passed: asyncio.Event
) -> None:
    """Publish what the pass commits as it commits it; once it has passed, drain."""
    await retry_transient(sink.start, maximum=2.0)
    try:
        while not passed.is_set():
            written.clear()
            await relay.drain()
            wake = asyncio.create_task(written.wait())
            done = asyncio.create_task(passed.wait())
            await asyncio.wait({wake, done}, return_when=asyncio.FIRST_COMPLETED)
            wake.cancel()
            done.cancel()
        await relay.drain()
    finally:
        await sink.stop()
