"""Events as the platform sends them (enrolments, scored submissions, corrections):
used by the reference delivery engine's users — the demo and the tests — to play the
platform's part."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.events import (
    CloudEvent,
    EnrolmentCreated,
    ScoreRemediated,
    SubmissionCreated,
    new_event,
)


def enrolment_created(
    tenant_id: uuid.UUID,
    programme_id: uuid.UUID,
    *,
    enrolled_at: datetime,
    enrolment_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    renewal_of: uuid.UUID | None = None,
    display_name: str | None = "Ada Lovelace",
) -> CloudEvent[Any]:
    return new_event(
        "enrolment.created",
        event_id=uuid.uuid4(),
        source="/evalium/platform",
        tenant_id=tenant_id,
        time=enrolled_at,
        data=EnrolmentCreated(
            enrolment_id=enrolment_id or uuid.uuid4(),
            user_id=user_id or uuid.uuid4(),
            program_id=programme_id,
            enrolled_at=enrolled_at,
            user_display_name=display_name,
            renewal_of_enrolment_id=renewal_of,
        ),
    )


def submission_created(
    tenant_id: uuid.UUID,
    *,
    assignment_id: uuid.UUID,
    user_id: uuid.UUID,
    evaluation_id: uuid.UUID,
    submitted_at: datetime,
    score: float | None = None,
    passed: bool | None = None,
    submission_id: uuid.UUID | None = None,
) -> CloudEvent[Any]:
    return new_event(
        "submission.created",
        event_id=uuid.uuid4(),
        source="/evalium/delivery",
        tenant_id=tenant_id,
        time=submitted_at,
        data=SubmissionCreated(
            submission_id=submission_id or uuid.uuid4(),
            assignment_id=assignment_id,
            user_id=user_id,
            evaluation_id=evaluation_id,
            score=score,
            passed=passed,
            score_version=1,
            submitted_at=submitted_at,
        ),
    )


def score_remediated(
    tenant_id: uuid.UUID,
    *,
    submission_id: uuid.UUID,
    score_version: int,
    remediated_at: datetime,
    score: float | None = None,
    passed: bool | None = None,
) -> CloudEvent[Any]:
    return new_event(
        "score.remediated",
        event_id=uuid.uuid4(),
        source="/evalium/corrections",
        tenant_id=tenant_id,
        time=remediated_at,
        data=ScoreRemediated(
            submission_id=submission_id,
            score_version=score_version,
            score=score,
            passed=passed,
            correction_batch_id=uuid.uuid4(),
            remediated_at=remediated_at,
        ),
    )
