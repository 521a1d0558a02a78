"""The certifier process: two subscribers, the verification page, the outbox relay
(`programmes run certifier`)."""

from __future__ import annotations

import asyncio

from services.certifier.handlers import Certifier
from services.certifier.verification import verification_routes
from shared.fleet import CERTIFIER
from shared.runtime import open_runtime, serve
from shared.settings import Settings

DEFAULT_HTTP_PORT = 8080


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the certifier until stopped (SIGTERM, or `stop`)."""
    async with open_runtime(CERTIFIER.name, settings) as runtime:
        certifier = Certifier(
            topic_prefix=settings.topic_prefix,
            public_base_url=settings.public_base_url,
            on_events_enqueued=runtime.relay.wake,
        )
        runtime.subscribe(
            CERTIFIER,
            {
                "enrolment.completed": certifier.on_enrolment_completed,
                "enrolment.reopened": certifier.on_enrolment_reopened,
            },
            batch_handlers={
                "enrolment.completed": certifier.on_enrolments_completed,
                "enrolment.reopened": certifier.on_enrolments_reopened,
            },
        )
        port = DEFAULT_HTTP_PORT if settings.http_port is None else settings.http_port
        routes = verification_routes(runtime.pool)
        await serve(runtime, port=port, routes=routes, stop=stop)
