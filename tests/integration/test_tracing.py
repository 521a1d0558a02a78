"""One trace across Kafka: an event's `traceparent` leaves through the outbox relay
as a Kafka header, faststream's tracing middleware links the consuming batch to
it, and the per-event span continues that very trace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.db.uow import TenantUnitOfWork
from shared.events import decode_event
from shared.messaging.broker import create_broker, subscribe
from shared.messaging.dead_letters import Delivery
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import topic_for
from shared.outbox import OutboxRelay, enqueue
from shared.settings import Settings
from tests.support.events import submission_created
from tests.support.kafka import create_topics
from tests.support.seed import seed_programme

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_provider(None)
        provider.shutdown()


def _ids(span: ReadableSpan) -> tuple[str, int]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), context.span_id


def _trace_id(span: ReadableSpan) -> str:
    return _ids(span)[0]


async def test_a_published_events_trace_reappears_on_the_consumer_side(
    settings: Settings, pool: asyncpg.Pool, exported: InMemorySpanExporter
) -> None:
    topic = topic_for("submission.created", settings.topic_prefix)
    await create_topics(settings.kafka_bootstrap_servers, [topic])
    tenant = (await seed_programme(pool)).tenant_id
    event = submission_created(
        tenant,
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        evaluation_id=uuid.uuid4(),
        submitted_at=datetime.now(UTC),
        score=90.0,
    ).model_copy(update={"traceparent": TRACEPARENT})
    untraced = submission_created(
        tenant,
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        evaluation_id=uuid.uuid4(),
        submitted_at=datetime.now(UTC),
        score=50.0,
    )
    async with TenantUnitOfWork(pool, tenant) as uow:
        for outgoing in (event, untraced):
            await enqueue(uow.connection, outgoing, topic_prefix=settings.topic_prefix, key="k")
        await uow.commit()

    received: list[Delivery] = []
    live: dict[str, str | None] = {}
    done = asyncio.Event()

    async def process_batch(deliveries: Sequence[Delivery]) -> None:
        # What the consumer pipeline does per message.
        for delivery in deliveries:
            decoded = decode_event(delivery.value, "submission.created", 1 << 20)
            attributes = {"cloudevents.event_id": str(decoded.id), "programmes.tenant_id": tenant}
            with telemetry.event_span("test", decoded.type, decoded.traceparent, attributes):
                live[str(decoded.id)] = telemetry.current_traceparent()
            received.append(delivery)
        if len(received) >= 2:
            done.set()

    broker = create_broker(settings, client_id="test")
    subscribe(
        broker,
        event_type="submission.created",
        topic=topic,
        group_id=f"{settings.topic_prefix}test-tracing",
        process_batch=process_batch,
        description="test",
    )
    sink = KafkaSink(settings.kafka_bootstrap_servers, client_id="test")
    await sink.start()
    await broker.start()
    try:
        assert await OutboxRelay(pool, sink).drain() == 2
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await broker.stop()
        await sink.stop()

    # The Kafka record carries the event's traceparent (and id) as headers.
    headers = {dict(d.headers)["correlation_id"].decode(): dict(d.headers) for d in received}
    assert headers[str(event.id)]["traceparent"] == TRACEPARENT.encode()
    assert "traceparent" not in headers[str(untraced.id)]

    spans = exported.get_finished_spans()
    event_spans = {
        span.attributes["cloudevents.event_id"]: span
        for span in spans
        if span.attributes and "cloudevents.event_id" in span.attributes
    }
    traced = event_spans[str(event.id)]
    assert _trace_id(traced) == TRACE_ID
    assert traced.kind is SpanKind.CONSUMER
    assert traced.attributes is not None
    assert traced.attributes["programmes.tenant_id"] == str(tenant)
    assert live[str(event.id)] == (f"00-{TRACE_ID}-{_ids(traced)[1]:016x}-01")
    # faststream's middleware spans the batch ("<topic> process") in a trace of its
    # own whose first span ("<topic> create") links to the producing trace...
    created = [s for s in spans if s.name == f"{topic} create"]
    links = [link for s in created for link in s.links]
    assert [format(link.context.trace_id, "032x") for link in links] == [TRACE_ID]
    batch_spans = [s for s in spans if s.name == f"{topic} process"]
    assert batch_spans and {_trace_id(s) for s in batch_spans} <= {_trace_id(s) for s in created}
    # ...and the event span is linked back to that batch span; the event without a
    # traceparent is handled inside the batch span's own trace.
    batch_ids = {_ids(s)[1] for s in batch_spans}
    assert {link.context.span_id for link in traced.links} <= batch_ids and traced.links
    other = event_spans[str(untraced.id)]
    assert other.parent is not None and other.parent.span_id in batch_ids
    assert _trace_id(other) != TRACE_ID
