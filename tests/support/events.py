"""Factories for the contract's consumed events (the platform's side)."""

from services.delivery_engine.platform_events import (
    enrolment_created,
    score_remediated,
    submission_created,
)

__all__ = ["enrolment_created", "score_remediated", "submission_created"]
