"""The certifier's pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.certifier.adapters.certificates import Verification
from services.certifier.domain import (
    holder_name,
    reopen_applies,
    should_issue,
    verification_status,
)
from services.certifier.handlers import new_public_token
from services.certifier.verification import TOKEN, public_view

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "rule", "shown"),
    [
        ("Ada Lovelace", "full", "Ada Lovelace"),
        ("Ada Lovelace", "initials", "A. L."),
        ("ada king lovelace", "initials", "A. K. L."),
        ("Ada Lovelace", "hidden", None),
        (None, "full", None),
        ("Ève Ødegård", "initials", "È. Ø."),
    ],
)
def test_holder_name_follows_the_privacy_rule(
    name: str | None, rule: str, shown: str | None
) -> None:
    assert holder_name(name, rule) == shown


@given(st.text(min_size=1, max_size=60))
def test_initials_never_reveal_more_than_one_letter_per_word(name: str) -> None:
    shown = holder_name(name, "initials")
    if shown is not None:
        assert all(len(part) == 2 and part.endswith(".") for part in shown.split(" "))


@pytest.mark.parametrize(
    ("status", "expires_at", "expected"),
    [
        ("active", None, "valid"),
        ("active", NOW + timedelta(seconds=1), "valid"),
        ("active", NOW, "expired"),
        ("expired", NOW + timedelta(days=9), "expired"),
        ("revoked", NOW + timedelta(days=9), "revoked"),
        ("revoked", NOW - timedelta(days=9), "revoked"),
    ],
)
def test_verification_status(status: str, expires_at: datetime | None, expected: str) -> None:
    assert verification_status(status, expires_at, NOW) == expected


def test_only_a_complete_uncertified_enrolment_issues() -> None:
    assert should_issue("completed")  # whatever completion event says so, at the row's time
    assert not should_issue("in_progress")  # reopened since
    assert not should_issue("certified")  # already issued for this completion
    assert not should_issue("expired")


def test_a_reopening_revokes_only_while_it_holds() -> None:
    assert reopen_applies("in_progress")
    assert not reopen_applies("completed")
    assert not reopen_applies("certified")


def test_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_public_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(TOKEN.fullmatch(t) and len(t) >= 32 for t in tokens)  # 192 bits


def test_the_public_view_is_an_allow_list() -> None:
    found = Verification(
        programme_name="P",
        badge_image_url=None,
        holder_display_name="Ada Lovelace",
        holder_name_rule="initials",
        issued_at=NOW,
        expires_at=None,
        status="active",
    )
    assert public_view(found, NOW) == {
        "programme": "P",
        "holder": "A. L.",
        "issued_at": NOW.isoformat(),
        "expires_at": None,
        "status": "valid",
    }
