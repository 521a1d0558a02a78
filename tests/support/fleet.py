"""Run the fleet's services in the test's event loop, against the test's
database and topic prefix, with the reference delivery engine over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from services.delivery_engine.app import create_app
from shared.events import CloudEvent
from shared.fleet import FLEET
from shared.http import HttpServer
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.kafka import create_topics, produce

ServiceRun = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def delivery_engine(port: int = 0) -> AsyncIterator[HttpServer]:
    """The reference delivery engine on 127.0.0.1."""
    server = HttpServer(create_app(), "127.0.0.1", port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def create_fleet_topics(settings: Settings) -> None:
    """Every topic of the fleet (and its dead-letter topic) under the test's prefix."""
    types = {t for s in FLEET for t in (*s.consumes, *s.produces)}
    topics = [topic_for(t, settings.topic_prefix) for t in sorted(types)]
    await create_topics(
        settings.kafka_bootstrap_servers, [*topics, *map(dead_letter_topic, topics)]
    )


def configure(settings: Settings, *, engine_port: int, http_port: int = 0) -> Settings:
    """Settings for a service run in a test: fast polling, given ports."""
    return settings.model_copy(
        update={
            "assignment_service_url": f"http://127.0.0.1:{engine_port}",
            "http_port": http_port,
            "dispatch_interval": 0.1,
            "relay_interval": 0.05,
            "lag_interval": 0.5,
            "public_base_url": f"http://127.0.0.1:{http_port}",
        }
    )


@contextlib.asynccontextmanager
async def running(run: ServiceRun, settings: Settings) -> AsyncIterator[None]:
    """Run a service's `run(settings, stop)` until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def send(settings: Settings, *events: CloudEvent[Any]) -> None:
    """Publish events as the platform would (keyed by enrolment when they name one)."""
    for event in events:
        await produce(
            settings.kafka_bootstrap_servers,
            topic_for(event.type, settings.topic_prefix),
            [event.to_bytes()],
            key=str(getattr(event.data, "enrolment_id", event.id)).encode(),
        )


async def answering(base_url: str, within: float = 30.0) -> None:
    """Wait until a service's /healthz answers."""
    import httpx

    from tests.support.kafka import eventually

    async with httpx.AsyncClient(base_url=base_url, timeout=1.0) as client:

        async def alive() -> bool:
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(alive, within=within)
