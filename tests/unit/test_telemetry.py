"""Tracing: off unless OTEL_* asks for it; one span per event, in the event's trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def ids(span: ReadableSpan) -> tuple[str, str]:
    """The span's trace id and span id, in hex as in a traceparent."""
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """The fleet's spans go to memory for the test (the global provider is untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_provider(None)
        provider.shutdown()


def test_an_event_span_continues_the_trace_of_the_events_traceparent(
    exported: InMemorySpanExporter,
) -> None:
    attributes = {"cloudevents.event_id": "e-1", "programmes.tenant_id": None, "offset": 7}
    with telemetry.event_span("orchestrator", "submission.created", TRACEPARENT, attributes):
        live = telemetry.current_traceparent()

    (span,) = exported.get_finished_spans()
    trace_id, span_id = ids(span)
    assert trace_id == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.kind is SpanKind.CONSUMER
    assert span.name == "submission.created process"
    assert span.attributes is not None
    assert span.attributes["programmes.consumer"] == "orchestrator"
    assert span.attributes["cloudevents.event_id"] == "e-1"
    assert span.attributes["offset"] == 7
    assert "programmes.tenant_id" not in span.attributes
    # Events produced inside carry the live span, in the same trace.
    assert live == f"00-{TRACE_ID}-{span_id}-01"


def test_an_event_span_links_the_batch_span_it_runs_in(exported: InMemorySpanExporter) -> None:
    provider = telemetry.active_provider()
    assert provider is not None
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("enrolment.created process") as batch:
        with telemetry.event_span("orchestrator", "enrolment.created", TRACEPARENT, {}):
            pass
        with telemetry.event_span("orchestrator", "enrolment.created", None, {}):
            pass

    traced, untraced, _ = exported.get_finished_spans()
    batch_context = batch.get_span_context()
    assert ids(traced)[0] == TRACE_ID
    assert [link.context.span_id for link in traced.links] == [batch_context.span_id]
    # Without a traceparent the event span is a child of the batch span.
    assert untraced.parent is not None and untraced.parent.span_id == batch_context.span_id
    assert ids(untraced)[0] == format(batch_context.trace_id, "032x")


def test_an_exception_is_recorded_on_the_event_span(exported: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        telemetry.event_span("certifier", "enrolment.completed", TRACEPARENT, {}),
    ):
        raise RuntimeError("boom")

    (span,) = exported.get_finished_spans()
    assert not span.status.is_ok
    assert [event.name for event in span.events] == ["exception"]


def test_without_otel_variables_no_sdk_provider_is_installed() -> None:
    assert telemetry.configure_tracing("programmes-test", environ={}) is None
    assert telemetry.active_provider() is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert telemetry.broker_middlewares() == ()
    # The no-op spans still carry the event's trace onto what it produces.
    with telemetry.event_span("orchestrator", "submission.created", TRACEPARENT, {}) as span:
        assert not span.is_recording()
        assert telemetry.current_traceparent() == TRACEPARENT
    assert telemetry.current_traceparent() is None


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_requested_only_by_an_exporter_or_endpoint(
    environ: dict[str, str], requested: bool
) -> None:
    assert telemetry.tracing_requested(environ) is requested


def test_an_otlp_protocol_that_is_not_installed_is_refused() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    with pytest.raises(telemetry.TracingConfigError, match="grpc"):
        telemetry.configure_tracing("programmes-test", environ=environ)
    assert telemetry.active_provider() is None


_PROCESS = """
import asyncio
from shared import telemetry

async def main():
    async with telemetry.process_tracing("programmes-probe") as provider:
        assert provider is not None and telemetry.broker_middlewares()
        with telemetry.event_span("orchestrator", "submission.created", {tp!r}, {{}}):
            pass
    assert telemetry.active_provider() is None

asyncio.run(main())
"""


def test_a_process_exports_its_spans_on_exit_under_its_service_name() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ["OTEL_TRACES_EXPORTER"] = "console"
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS.format(tp=TRACEPARENT)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    decoder = json.JSONDecoder()
    span, _ = decoder.raw_decode(done.stdout.strip())
    assert span["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert span["resource"]["attributes"]["service.name"] == "programmes-probe"
