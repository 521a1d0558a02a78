"""The certifier's rules: pure functions, time as a parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

VerificationStatus = Literal["valid", "expired", "revoked"]
HolderNameRule = Literal["full", "initials", "hidden"]


def should_issue(enrolment_status: str) -> bool:
    """Issue only while the enrolment is complete and not yet certified.

    The certificate is made from the enrolment row, not from the event: events on
    different topics arrive in any order, and the row is the truth. An
    `enrolment.completed` whose completion was since taken back (in progress
    again) is stale; one whose completion time the orchestrator has corrected
    since (an earlier passing attempt arrived late) still certifies, at the
    corrected time; once certified, later completion events of the same
    completion change nothing.
    """
    return enrolment_status == "completed"


def issue_time(enrolment_status: str, enrolment_completed_at: datetime | None) -> datetime | None:
    """When the certificate for a completion event is issued: at the enrolment row's
    completion time, while `should_issue` holds; None when the event is stale."""
    if not should_issue(enrolment_status):
        return None
    return enrolment_completed_at


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
