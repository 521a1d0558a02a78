"""Scenario 5 (issue #6): the orchestrator scaled from one process to three and back
to one during a run (partitions move twice, in-flight batches are handed over) → the
final ledger equals a serial run's: its order-independent hash equals the one the
pure rules compute from the events (the oracle)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.oracle import canonical, digest, expect

FEED_SECONDS = 15.0


@pytest.mark.timeout(timeout_for(EVENTS))
async def test_scaling_one_to_three_and_back_ends_as_a_serial_run(
    shared_target: Target, workdir: Path
) -> None:
    # Paced over FEED_SECONDS, so that both scalings happen while records flow.
    async with FaultRun(
        shared_target, workdir, "rebalance", events=EVENTS, seed=seed(), feed_seconds=FEED_SECONDS
    ) as run:
        run.feed()
        done = await run.wait_processed(0.2)
        await asyncio.gather(run.add_orchestrator(), run.add_orchestrator())
        run.fault(f"scaled 1 -> 3 after {done}/{run.figures.messages} records")
        done = await run.wait_processed(0.6)
        await asyncio.gather(*(p.stop() for p in run.orchestrators[1:]))
        run.fault(f"scaled 3 -> 1 after {done}/{run.figures.messages} records")
        await run.settle()
        figures = await run.verify()
        serial = digest(canonical(expect(run.workload)))

    assert figures.state_hash == serial
    assert figures.crashes == 0
