"""How every service of the fleet starts, serves and stops.

Start: open the pool, refuse to run if the database role could escape tenant
isolation, connect the producer, register subscribers. Serve: consume, run the
background loops (outbox relay, ...), answer /healthz, /readyz, /metrics.
Stop on SIGTERM: report not-ready, stop consuming (in-flight batches finish and
commit their offsets, or are abandoned uncommitted), stop the loops, flush the
outbox once more, close everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from shared.db.catalogue import assert_secure
from shared.db.pool import create_pool
from shared.fleet import ServiceTopology
from shared.http import HttpServer, ops_routes
from shared.messaging.broker import create_broker, subscribe_consumer
from shared.messaging.consumer import BatchHandler, EventConsumer, Handler
from shared.messaging.dead_letters import DeadLetterPublisher
from shared.messaging.lag import LagMonitor
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.outbox import OutboxRelay
from shared.retry import retry_transient
from shared.settings import Settings
from shared.telemetry import process_tracing

log = structlog.get_logger("programmes.runtime")
Loop = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    """The resources of one running service."""

    name: str
    settings: Settings
    pool: asyncpg.Pool
    sink: KafkaSink
    broker: KafkaBroker
    relay: OutboxRelay
    group_id: str
    dead_letters: DeadLetterPublisher
    draining: bool = field(default=False)
    topics: list[str] = field(default_factory=list)

    def subscribe(
        self,
        service: ServiceTopology,
        handlers: dict[str, Handler],
        batch_handlers: Mapping[str, BatchHandler] | None = None,
    ) -> None:
        """Run each event type the service consumes through the consumer pipeline
        into its handler (and its batch handler, when it has one), as a member of
        the service's consumer group."""
        batch_handlers = batch_handlers or {}
        if set(handlers) != set(service.consumes) or not set(batch_handlers) <= set(handlers):
            raise ValueError(
                f"{service.name} consumes {service.consumes}, handlers for {set(handlers)}"
                f" and batch handlers for {set(batch_handlers)}"
            )
        for event_type, handler in handlers.items():
            self.topics.append(topic_for(event_type, self.settings.topic_prefix))
            consumer = EventConsumer(
                name=service.name,
                event_type=event_type,
                pool=self.pool,
                dead_letters=self.dead_letters,
                handler=handler,
                max_event_bytes=self.settings.max_event_bytes,
                batch_handler=batch_handlers.get(event_type),
            )
            subscribe_consumer(
                self.broker,
                consumer,
                topic=topic_for(event_type, self.settings.topic_prefix),
                group_id=self.group_id,
                max_records=self.settings.max_batch,
            )

    async def readiness(self) -> dict[str, bool]:
        """Database and broker reachable, and not shutting down."""
        return {
            "database": await _database_answers(self.pool),
            "broker": bool(await self.broker.ping(timeout=1.0)),
            "serving": not self.draining,
        }


async def _database_answers(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(1.0), pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT true"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


@contextlib.asynccontextmanager
async def open_runtime(name: str, settings: Settings) -> AsyncIterator[Runtime]:
    """Open (and finally close) tracing, the pool, producer and broker of service `name`."""
    async with process_tracing(f"programmes-{name}"), _open_resources(name, settings) as runtime:
        yield runtime


@contextlib.asynccontextmanager
async def _open_resources(name: str, settings: Settings) -> AsyncIterator[Runtime]:
    pool = await retry_transient(lambda: create_pool(settings), maximum=2.0)
    try:
        async with pool.acquire() as conn:
            await assert_secure(conn)
        sink = KafkaSink(settings.kafka_bootstrap_servers, client_id=f"programmes-{name}")
        await retry_transient(sink.start, maximum=2.0)
        try:
            group_id = f"{settings.topic_prefix}programmes-{name}"
            yield Runtime(
                name=name,
                settings=settings,
                pool=pool,
                sink=sink,
                broker=create_broker(settings, client_id=f"programmes-{name}"),
                relay=OutboxRelay(
                    pool,
                    sink,
                    interval=settings.relay_interval,
                    sample_every=settings.lag_interval,
                ),
                group_id=group_id,
                dead_letters=DeadLetterPublisher(sink, group_id),
            )
        finally:
            await sink.stop()
    finally:
        await pool.close()


async def serve(
    runtime: Runtime,
    loops: Sequence[Loop] = (),
    *,
    port: int,
    routes: Sequence[BaseRoute] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when no event is given)."""
    stop = stop or _stop_on_signals()
    app = Starlette(routes=[*ops_routes(runtime.readiness), *routes])
    http = HttpServer(app, runtime.settings.http_host, port)
    await http.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        await runtime.broker.start()
        background: list[Loop] = [runtime.relay.run, *loops]
        if runtime.topics:
            monitor = LagMonitor(
                runtime.settings.kafka_bootstrap_servers,
                runtime.group_id,
                runtime.topics,
                runtime.settings.lag_interval,
            )
            background.append(monitor.run)
        tasks = [asyncio.create_task(loop()) for loop in background]
        log.info("service started", service=runtime.name, http_port=http.port)
        await _until_stopped_or_crashed(stop, tasks)
    finally:
        runtime.draining = True
        log.info("service draining", service=runtime.name)
        await runtime.broker.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await runtime.relay.drain()
        await http.stop()
        log.info("service stopped", service=runtime.name)


async def _until_stopped_or_crashed(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter and not task.cancelled() and task.exception() is not None:
            # A background loop died: stop the whole service and let it be restarted.
            raise RuntimeError(f"background loop failed: {task.exception()!r}")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
