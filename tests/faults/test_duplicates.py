"""Scenario 1 (issue #6): every event delivered three times, copies side by side
and late, some under another key so that the second orchestrator process handles
them concurrently with the first → one ledger effect, one assignment per key, one
certificate per enrolment, one enrolment.completed id per completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.feeder import Copies


@pytest.mark.timeout(timeout_for(3 * EVENTS))
async def test_every_event_three_times_to_two_orchestrators_has_one_effect(
    shared_target: Target, workdir: Path
) -> None:
    copies = Copies(count=3, rekeyed=True, late=0.3)
    async with FaultRun(
        shared_target,
        workdir,
        "duplicates",
        events=EVENTS,
        seed=seed(),
        copies=copies,
        orchestrators=2,
    ) as run:
        run.feed()
        await run.settle()
        figures = await run.verify()

    assert figures.messages == 3 * figures.events
