"""The certifier's rules: pure functions, time as a parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

VerificationStatus = Literal["valid", "expired", "revoked"]
HolderNameRule = Literal["full", "initials", "hidden"]


def should_issue(
    enrolment_status: str, enrolment_completed_at: datetime | None, event_completed_at: datetime
) -> bool:
    """Issue only for the enrolment's current completion.

    An `enrolment.completed` whose completion was since taken back (the
    enrolment is in progress again) or replaced by a later one is stale: events
    on different topics arrive in any order, the enrolment row is the truth.
    """
    return enrolment_status == "completed" and enrolment_completed_at == event_completed_at


def reopen_applies(enrolment_status: str) -> bool:
    """A reopening revokes only while the enrolment is still reopened: if it has
    completed again since, the reopening is history and the new certificate stays."""
    return enrolment_status not in ("completed", "certified")


def holder_name(display_name: str | None, rule: str) -> str | None:
    """The holder's name as the tenant's privacy rule allows it on public pages."""
    if display_name is None or rule == "hidden":
        return None
    if rule == "full":
        return display_name
    initials = [_initial(word[0]) + "." for word in display_name.split() if word[0].isalnum()]
    return " ".join(initials) or None


def _initial(letter: str) -> str:
    # Some letters upper-case to several ("ß" -> "SS"): an initial stays one letter.
    upper = letter.upper()
    return upper if len(upper) == 1 else letter


def verification_status(
    status: str, expires_at: datetime | None, now: datetime
) -> VerificationStatus:
    """What a verifier is told: revoked beats expired beats valid."""
    if status == "revoked":
        return "revoked"
    if status == "expired" or (expires_at is not None and expires_at <= now):
        return "expired"
    return "valid"
