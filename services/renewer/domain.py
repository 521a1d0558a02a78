"""The renewer's rules: when a certificate's renewal is due, when it has expired,
and what its expiry does to the enrolment. Pure functions; time is a parameter.

A renewal is a new enrolment, never an edit of the certificate (roadmap 6.4):
each certificate asks for one, once, when its programme's renewal window opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.ids import derived_id

DISPLAY_NAME_MAX = 200  # what enrolment.created accepts (shared/events/contract.py)


@dataclass(frozen=True)
class CertificateTerm:
    """What the rules look at of one certificate."""

    status: str  # active | expired | revoked
    expires_at: datetime | None  # None: valid for ever
    # expires_at minus the pinned version's renewal window (calendar arithmetic
    # in UTC, done by the database so that its scans agree with these rules).
    renewal_opens_at: datetime | None
    renewal_requested: bool
    programme_archived: bool


@dataclass(frozen=True)
class Decision:
    """What one pass does to one certificate."""

    open_renewal: bool = False
    expire: bool = False


def renewal_due(renewal_opens_at: datetime | None, now: datetime) -> bool:
    """Whether the renewal window has opened by `now` (it never closes: a certificate
    that expired unrenewed may still be renewed)."""
    return renewal_opens_at is not None and renewal_opens_at <= now


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a certificate expiring at `expires_at` is no longer valid at `now`."""
    return expires_at is not None and expires_at <= now


def decide(term: CertificateTerm, now: datetime) -> Decision:
    """What is due for this certificate at `now`.

    Only an active certificate is renewed or expired. A renewal is asked for
    once; an archived programme takes no new enrolments, so gets none.
    """
    if term.status != "active":
        return Decision()
    return Decision(
        open_renewal=(
            not term.renewal_requested
            and not term.programme_archived
            and renewal_due(term.renewal_opens_at, now)
        ),
        expire=expired(term.expires_at, now),
    )


def enrolment_expires(enrolment_status: str) -> bool:
    """Whether the enrolment behind an expiring certificate expires with it: only a
    finished one (a reopened or cancelled enrolment keeps its own status)."""
    return enrolment_status in ("completed", "certified")


def carried_display_name(name: str | None) -> str | None:
    """The holder's name as the renewal enrolment carries it (None when the event
    could not carry it: empty, or longer than the contract allows)."""
    if name is None or not 1 <= len(name) <= DISPLAY_NAME_MAX:
        return None
    return name


def renewal_enrolment_id(tenant_id: UUID, enrolment_id: UUID) -> UUID:
    """The renewal of an enrolment. Derived from the enrolment, not the certificate:
    a certificate reissued for the same enrolment must not ask for a second
    renewal (the schema allows one per enrolment)."""
    return derived_id("renewal", tenant_id, enrolment_id)


def renewal_event_id(tenant_id: UUID, enrolment_id: UUID) -> UUID:
    """The id of the `enrolment.created` announcing that renewal."""
    return derived_id("renewal.enrolment.created", tenant_id, enrolment_id)


def expiry_event_id(tenant_id: UUID, certificate_id: UUID) -> UUID:
    """The id of a certificate's `certificate.expired` (it expires once)."""
    return derived_id("certificate.expired", tenant_id, certificate_id)
