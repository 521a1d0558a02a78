"""Scenario 6 (issue #6): after a run, the orchestrator's and the certifier's consumer
groups are reset to the earliest offsets (`programmes replay`) and everything is
processed again → the ledger hash, decision history included, is identical, and no
new output event id appears."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.fleet import CERTIFIER, ORCHESTRATOR
from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.cli import ok


@pytest.mark.timeout(timeout_for(2 * EVENTS))
async def test_replaying_everything_changes_nothing(shared_target: Target, workdir: Path) -> None:
    async with FaultRun(shared_target, workdir, "replay", events=EVENTS, seed=seed()) as run:
        run.feed()
        await run.settle()
        before = await run.snapshot()  # checked against the oracle with `second` below

        services = [*run.orchestrators, run.certifier]
        await asyncio.gather(*(p.stop() for p in services))
        # The command adds the prefix to the group's name.
        resets = await asyncio.gather(
            *(
                ok(
                    run.target.settings(),
                    "replay",
                    "--group",
                    service.group_id(),
                    "--to",
                    "earliest",
                    "--execute",
                    "--json",
                )
                for service in (ORCHESTRATOR, CERTIFIER)
            )
        )
        rewound = sum((p["current"] or 0) - p["new"] for p in resets[0].json()["partitions"])
        run.fault("orchestrator and certifier groups reset to earliest")
        await asyncio.gather(*(p.start() for p in services))
        await run.settle()
        second = await run.verify()

    assert (second.ledger_hash, second.extra["output_event_ids"]) == before
    assert rewound == second.messages  # all of it read again (settle waits for no lag)
    assert second.crashes == 0
