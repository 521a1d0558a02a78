"""OpenTelemetry tracing, off unless the standard OTEL_* variables ask for it.

With tracing off no SDK provider is installed: the spans below are the API's
no-op spans (which still carry an incoming `traceparent` through, so produced
events keep their cause's trace). With it on, one provider per process exports
through a BatchSpanProcessor (OTLP over HTTP, or the console), faststream's
KafkaTelemetryMiddleware traces every batch, and the consumer pipeline opens one
span per event whose parent is the event's own `traceparent` attribute: one
trace follows an event from submission to certificate, across services.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from faststream._internal.types import BrokerMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

INSTRUMENTATION = "programmes"
# Any of these names an exporter: tracing is wanted (unless OTEL_SDK_DISABLED=true).
_REQUESTING = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.get_tracer(INSTRUMENTATION)


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something this fleet cannot export with."""


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether `environ` asks for traces: an exporter or an OTLP endpoint is named,
    the exporter is not `none`, and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in _REQUESTING) and bool(
        _exporter_names(environ)
    )


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")
    return [n.strip() for n in names if n.strip() and n.strip() != "none"]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise TracingConfigError(f"OTLP protocol {protocol!r}: only http/protobuf is installed")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*


def configure_tracing(
    service_name: str, environ: Mapping[str, str] = os.environ
) -> TracerProvider | None:
    """Install a global SDK provider for process `service_name` if `environ` asks for
    tracing (OTEL_SERVICE_NAME, when set, names the service instead); else nothing."""
    if not tracing_requested(environ):
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = [_exporter(name, environ) for name in _exporter_names(environ)]
    named = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(named))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use_provider(provider)
    return provider


def use_provider(provider: TracerProvider | None) -> None:
    """Make `provider` the one the fleet's spans and broker middleware use (tests
    pass one with an in-memory exporter; None goes back to the global API)."""
    global _provider, _tracer
    _provider = provider
    _tracer = (provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION)


def active_provider() -> TracerProvider | None:
    """The SDK provider in use, or None when tracing is off."""
    return _provider


def shutdown_tracing() -> None:
    """Export what is buffered and stop the provider (blocks up to a few seconds)."""
    provider = _provider
    if provider is None:
        return
    use_provider(None)
    provider.force_flush(timeout_millis=5000)
    provider.shutdown()


@contextlib.asynccontextmanager
async def process_tracing(service_name: str) -> AsyncIterator[TracerProvider | None]:
    """Tracing for the life of a service process: configured on entry (when OTEL_*
    asks for it), flushed and shut down on exit. A process that already has a
    provider (several services in one test process) keeps it."""
    if _provider is not None:
        yield _provider
        return
    provider = configure_tracing(service_name)
    try:
        yield provider
    finally:
        if provider is not None:
            await asyncio.to_thread(shutdown_tracing)


def broker_middlewares() -> tuple[BrokerMiddleware[Any, Any], ...]:
    """faststream's Kafka tracing middleware when tracing is on, else nothing."""
    if _provider is None:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider

    # Metrics stay with Prometheus (/metrics): the middleware's meters are no-ops.
    return (
        KafkaTelemetryMiddleware(tracer_provider=_provider, meter_provider=NoOpMeterProvider()),
    )


def event_span(
    consumer_name: str,
    event_type: str,
    traceparent: str | None,
    attributes: Mapping[str, Any],
    start_time: int | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A CONSUMER span around the handling of one event, current while it is open
    (from `start_time`, in ns since the epoch, when the handling began earlier: an
    event handled within a batch group gets the group's time window).

    Its parent is the event's `traceparent` (W3C trace context) when it carries a
    valid one, linked to the enclosing batch span; otherwise the enclosing span.
    `attributes` are added as span attributes (None values dropped, others that
    are not str, bool, int or float turned to str). An exception escaping the
    block is recorded on the span.
    """
    parent = None
    links: list[Link] = []
    if traceparent:
        remote = _PROPAGATOR.extract({"traceparent": traceparent})
        if trace.get_current_span(remote).get_span_context().is_valid:
            parent = remote
            enclosing = trace.get_current_span().get_span_context()
            if enclosing.is_valid:
                links.append(Link(enclosing))
    return _tracer.start_as_current_span(
        f"{event_type} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        start_time=start_time,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "cloudevents.event_type": event_type,
            "programmes.consumer": consumer_name,
            **_attribute_values(attributes),
        },
    )


def _attribute_values(attributes: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None outside any span), to stamp
    on events produced while handling another one."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
