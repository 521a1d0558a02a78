"""The renewer's pure rules, as examples and as properties."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.renewer import domain
from services.renewer.domain import CertificateTerm, Decision

EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=30)
ACTIVE = CertificateTerm(
    status="active",
    expires_at=EXPIRES,
    renewal_opens_at=EXPIRES - WINDOW,
    renewal_requested=False,
    programme_archived=False,
)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
windows = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (EXPIRES - WINDOW - timedelta(microseconds=1), Decision()),
        (EXPIRES - WINDOW, Decision(open_renewal=True)),
        (EXPIRES - timedelta(microseconds=1), Decision(open_renewal=True)),
        (EXPIRES, Decision(open_renewal=True, expire=True)),
        (EXPIRES + timedelta(days=400), Decision(open_renewal=True, expire=True)),
    ],
)
def test_the_window_opens_at_expiry_minus_the_window_and_expiry_is_inclusive(
    now: datetime, expected: Decision
) -> None:
    assert domain.decide(ACTIVE, now) == expected


@pytest.mark.parametrize(
    "term",
    [
        replace(ACTIVE, status="expired"),
        replace(ACTIVE, status="revoked"),
        replace(ACTIVE, expires_at=None, renewal_opens_at=None),
    ],
)
def test_only_an_active_certificate_with_an_expiry_is_renewed_or_expired(
    term: CertificateTerm,
) -> None:
    assert domain.decide(term, EXPIRES + timedelta(days=1)) == Decision()


def test_a_renewal_is_asked_for_once() -> None:
    requested = replace(ACTIVE, renewal_requested=True)
    assert domain.decide(requested, EXPIRES - timedelta(days=1)) == Decision()
    assert domain.decide(requested, EXPIRES) == Decision(expire=True)


def test_an_archived_programme_gets_no_renewal_but_its_certificates_still_expire() -> None:
    archived = replace(ACTIVE, programme_archived=True)
    assert domain.decide(archived, EXPIRES - timedelta(days=1)) == Decision()
    assert domain.decide(archived, EXPIRES) == Decision(expire=True)


@pytest.mark.parametrize(
    ("status", "expires"),
    [
        ("certified", True),
        ("completed", True),
        ("in_progress", False),
        ("cancelled", False),
        ("expired", False),
    ],
)
def test_only_a_finished_enrolment_expires_with_its_certificate(status: str, expires: bool) -> None:
    assert domain.enrolment_expires(status) is expires


@pytest.mark.parametrize(
    ("name", "carried"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        (None, None),
        ("", None),
        ("x" * 200, "x" * 200),
        ("x" * 201, None),
    ],
)
def test_the_display_name_is_carried_when_the_event_can_carry_it(
    name: str | None, carried: str | None
) -> None:
    assert domain.carried_display_name(name) == carried


def test_ids_are_deterministic_and_distinct() -> None:
    tenant, enrolment, certificate = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert domain.renewal_enrolment_id(tenant, enrolment) == domain.renewal_enrolment_id(
        tenant, enrolment
    )
    ids = {
        domain.renewal_enrolment_id(tenant, enrolment),
        domain.renewal_event_id(tenant, enrolment),
        domain.expiry_event_id(tenant, certificate),
        domain.renewal_enrolment_id(uuid.uuid4(), enrolment),
        enrolment,
    }
    assert len(ids) == 5


@given(expires_at=instants, window=windows, now=instants)
def test_expiry_implies_that_the_renewal_is_due(
    expires_at: datetime, window: timedelta, now: datetime
) -> None:
    if domain.expired(expires_at, now):
        assert domain.renewal_due(expires_at - window, now)


@given(expires_at=instants, window=windows, now=instants, later=windows)
def test_once_due_always_due(
    expires_at: datetime, window: timedelta, now: datetime, later: timedelta
) -> None:
    opens = expires_at - window
    if domain.renewal_due(opens, now):
        assert domain.renewal_due(opens, now + later)
    if domain.expired(expires_at, now):
        assert domain.expired(expires_at, now + later)


def _after(term: CertificateTerm, done: Decision) -> CertificateTerm:
    """What the store holds once a decision is applied (the handler's effect)."""
    if done.open_renewal:
        term = replace(term, renewal_requested=True)
    if done.expire:
        term = replace(term, status="expired")
    return term


@given(
    expires_at=instants,
    window=windows,
    archived=st.booleans(),
    passes=st.lists(instants, max_size=12),
)
def test_any_sequence_of_passes_renews_at_most_once_and_expires_at_most_once(
    expires_at: datetime, window: timedelta, archived: bool, passes: list[datetime]
) -> None:
    term = CertificateTerm("active", expires_at, expires_at - window, False, archived)
    renewals = expiries = 0
    for now in passes:
        done = domain.decide(term, now)
        if done.open_renewal:
            assert now >= expires_at - window and not archived
        if done.expire:
            assert now >= expires_at
        renewals += done.open_renewal
        expiries += done.expire
        term = _after(term, done)
    assert renewals <= 1
    assert expiries <= 1
    if any(now >= expires_at for now in passes):
        # Whatever the order of the passes, the certificate ends expired, and
        # renewed unless its programme is archived.
        assert expiries == 1
        assert renewals == (0 if archived else 1)
