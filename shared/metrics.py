"""Prometheus metrics shared by every service (served on /metrics)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "programmes_messages_total",
    "Messages consumed, by topic and outcome (applied, ignored, duplicate, dead_lettered).",
    ["topic", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "programmes_message_handling_seconds",
    "Time to handle one message, decode to commit (in a batch: its tenant group's time).",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
BATCH_SIZE = Histogram(
    "programmes_batch_size",
    "Messages per consumed batch.",
    ["topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCH_FALLBACKS = Counter(
    "programmes_batch_fallbacks_total",
    "Tenant groups of a batch redone one message at a time (a bad message among them).",
    ["topic"],
)
OUTBOX_PUBLISHED = Counter(
    "programmes_outbox_published_total",
    "Events published from the transactional outbox, by topic.",
    ["topic"],
)
ASSIGNMENT_REQUESTS = Counter(
    "programmes_assignment_requests_total",
    "Assignment requests sent to the delivery engine, by outcome (created, failed).",
    ["outcome"],
)
OUTBOX_BACKLOG = Gauge(
    "programmes_outbox_backlog",
    "Outbox rows not yet published (all tenants), as of the relay's last pass.",
)
OUTBOX_PUBLISH_DELAY = Histogram(
    "programmes_outbox_publish_delay_seconds",
    "From an event's commit to the outbox until the broker acknowledged it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ASSIGNMENT_REQUESTS_PENDING = Gauge(
    "programmes_assignment_requests_pending",
    "Assignment requests waiting for the delivery engine (all tenants).",
)
CERTIFICATES = Counter(
    "programmes_certificates_total",
    "Certificate decisions by the certifier, by event (issued, revoked).",
    ["event"],
)
CONSUMER_LAG = Gauge(
    "programmes_consumer_lag",
    "Records of a partition not yet committed by the service's consumer group.",
    ["group", "topic", "partition"],
)


class Every:
    """True at most once per `seconds`: samples a gauge from a loop that polls far
    more often than the gauge needs (a count query per poll would be wasted work)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._next = 0.0

    def due(self) -> bool:
        """Whether a sample is due now (and, if so, the next one is `seconds` away)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._seconds
        return True
