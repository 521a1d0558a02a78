"""The events a scenario feeds, built with the contract's own models (the same
factories the demo and the tests use), serialised once.

Submissions go in blocks of enrolments: each learner of a block first fails
theory, then passes theory, hazard and report, so every event goes down the
ledger path, requirements get met and every enrolment completes (its fourth
submission is the last requirement's). Messages are keyed by learner, as the
platform keys them, so a learner's submissions stay in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench.kafka import Message
from bench.seed import Learner
from shared.events import EnrolmentCompleted, new_event
from tests.support.events import submission_created
from tests.support.programmes import Sample

# (requirement, score, passed): one learner's submissions, in order.
STEPS: tuple[tuple[str, float | None, bool | None], ...] = (
    ("theory", 50.0, None),
    ("theory", 90.0, None),
    ("hazard", 80.0, None),
    ("report", None, True),
)
BLOCK = 50  # learners whose submissions interleave


@dataclass(frozen=True)
class Submission:
    """One planned submission.created, with what the latency scenario tracks."""

    tenant_id: uuid.UUID
    submission_id: uuid.UUID
    enrolment_id: uuid.UUID
    completes: bool  # the last requirement's submission: a certificate should follow
    message: Message


def learners_for(events: int) -> int:
    """Learners needed for `events` submissions."""
    return -(-events // len(STEPS))


def submissions(learners: Sequence[Learner], at: datetime) -> Iterator[Submission]:
    """Every learner's submissions, block by block (see the module docstring)."""
    for start in range(0, len(learners), BLOCK):
        block = learners[start : start + BLOCK]
        for step, (key, score, passed) in enumerate(STEPS):
            for learner in block:
                yield _submission(learner, key, score, passed, at + timedelta(minutes=step))


def _submission(
    learner: Learner, key: str, score: float | None, passed: bool | None, at: datetime
) -> Submission:
    assignment_id, evaluation_id = learner.assignments[key]
    submission_id = uuid.uuid4()
    event = submission_created(
        learner.tenant_id,
        assignment_id=assignment_id,
        user_id=learner.user_id,
        evaluation_id=evaluation_id,
        submitted_at=at,
        score=score,
        passed=passed,
        submission_id=submission_id,
    )
    return Submission(
        learner.tenant_id,
        submission_id,
        learner.enrolment_id,
        key == STEPS[-1][0],
        (str(learner.user_id).encode(), event.to_bytes()),
    )


def messages(planned: Iterator[Submission], limit: int) -> Iterator[Message]:
    """The first `limit` planned submissions' Kafka messages."""
    for count, submission in enumerate(planned):
        if count >= limit:
            return
        yield submission.message


def completions(
    sample: Sample, enrolments: Sequence[tuple[uuid.UUID, uuid.UUID]], completed_at: datetime
) -> list[Message]:
    """One enrolment.completed per (enrolment, user), keyed by enrolment."""
    return [
        (
            str(enrolment).encode(),
            new_event(
                "enrolment.completed",
                event_id=uuid.uuid4(),
                source="/programmes/orchestrator",
                time=completed_at,
                tenant_id=sample.tenant_id,
                data=EnrolmentCompleted(
                    enrolment_id=enrolment,
                    user_id=user,
                    program_id=sample.programme_id,
                    program_version=sample.version,
                    completed_at=completed_at,
                    evidence=[],
                ),
            ).to_bytes(),
        )
        for enrolment, user in enrolments
    ]
