"""Scenario 2 (issue #6): the orchestrator process is killed with SIGKILL at random
moments while it works through the workload, and restarted → nothing lost, nothing
doubled.

The product cannot be instrumented from here, so the windows named by the issue —
mid-transaction, after a commit but before the offset commit, after an assignment
call but before its commit — are hit statistically: each kill lands at a random
delay after the consumer group made progress (its lag was decreasing), and the
figures show which windows were hit (transactions open at the kill, messages found
already processed after a restart, assignment requests the engine answered from
their idempotency key).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
import pytest

from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.processes import ServiceProcess

KILLS = 5
SECONDS_PER_KILL = 30  # a SIGKILLed member stays in the group until its session expires


async def open_transactions(admin_url: str, process: ServiceProcess) -> int:
    """Database transactions the process has open right now."""
    assert process.pid is not None
    server_port = urlsplit(admin_url).port or 5432
    ports = [
        c.laddr.port
        for c in psutil.Process(process.pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == server_port
    ]
    conn = await asyncpg.connect(admin_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE client_port = ANY($1::int[]) AND xact_start IS NOT NULL",
                ports,
            )
        )
    finally:
        await conn.close()


@pytest.mark.heavy
@pytest.mark.timeout(timeout_for(EVENTS) + KILLS * SECONDS_PER_KILL)
async def test_sigkilled_orchestrator_loses_nothing_and_doubles_nothing(
    shared_target: Target, workdir: Path
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    marks = sorted(rng.uniform(0.1, 0.85) for _ in range(KILLS))
    open_at_kill = []
    async with FaultRun(shared_target, workdir, "kill9", events=EVENTS, seed=chosen) as run:
        [orchestrator] = run.orchestrators
        run.feed()
        done = 0
        for mark in marks:
            # Only once the restarted process has committed progress: mid-stream.
            done = await run.wait_processed_beyond(max(done, mark * run.figures.messages))
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            open_at_kill.append(await open_transactions(run.target.admin_url, orchestrator))
            await orchestrator.kill()
            run.fault(f"SIGKILL after {done}/{run.figures.messages} records")
            await orchestrator.start(ready_within=None)
        await run.settle()
        run.figures.extra["transactions_open_at_kills"] = open_at_kill
        figures = await run.verify()

    assert figures.kills == KILLS
