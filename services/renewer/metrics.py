"""The renewer's Prometheus metrics (served on /metrics in loop mode)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RENEWALS_OPENED = Counter(
    "programmes_renewals_opened_total",
    "Renewal enrolments announced (enrolment.created through the outbox).",
)
CERTIFICATES_EXPIRED = Counter(
    "programmes_certificates_expired_total",
    "Certificates marked expired (certificate.expired through the outbox).",
)
SETTLE_FAILURES = Counter(
    "programmes_renewer_failures_total",
    "Certificates a pass could not settle (left for the next pass).",
)
PASS_SECONDS = Histogram(
    "programmes_renewer_pass_seconds",
    "Duration of one renewer pass, scans included.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
