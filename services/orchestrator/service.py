"""The orchestrator process: three subscribers, the assignment dispatcher, the
outbox relay (`programmes run orchestrator`)."""

from __future__ import annotations

import asyncio

from services.orchestrator.adapters.delivery import DeliveryEngine, HttpDeliveryEngine
from services.orchestrator.dispatcher import AssignmentDispatcher
from services.orchestrator.handlers import Orchestrator
from shared.fleet import ORCHESTRATOR
from shared.runtime import Loop, Runtime, open_runtime, serve
from shared.settings import Settings

DEFAULT_HTTP_PORT = 8081


def wire(runtime: Runtime, engine: DeliveryEngine) -> list[Loop]:
    """Subscribe the handlers to their topics; returns the background loops to run."""
    settings = runtime.settings
    dispatcher: AssignmentDispatcher
    orchestrator = Orchestrator(
        topic_prefix=settings.topic_prefix,
        on_assignments_requested=lambda: dispatcher.wake(),
        on_events_enqueued=runtime.relay.wake,
    )
    dispatcher = AssignmentDispatcher(
        runtime.pool,
        engine,
        orchestrator,
        interval=settings.dispatch_interval,
        lease_seconds=settings.dispatch_lease,
        sample_every=settings.lag_interval,
    )
    runtime.subscribe(
        ORCHESTRATOR,
        {
            "enrolment.created": orchestrator.on_enrolment_created,
            "submission.created": orchestrator.on_submission_created,
            "score.remediated": orchestrator.on_score_remediated,
        },
        batch_handlers={
            "submission.created": orchestrator.on_submissions_created,
            "score.remediated": orchestrator.on_scores_remediated,
        },
    )
    return [dispatcher.run]


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the orchestrator until stopped (SIGTERM, or `stop`)."""
    engine = HttpDeliveryEngine(settings.assignment_service_url)
    try:
        async with open_runtime(ORCHESTRATOR.name, settings) as runtime:
            loops = wire(runtime, engine)
            await serve(runtime, loops, port=_port(settings), stop=stop)
    finally:
        await engine.close()


def _port(settings: Settings) -> int:
    return DEFAULT_HTTP_PORT if settings.http_port is None else settings.http_port
