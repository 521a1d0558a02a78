"""Scenario 2 (issue #6): orchestrator processes are killed with SIGKILL at random
moments while they work through the workload, and restarted → nothing lost, nothing
doubled.

Three processes share the work; each of two rounds kills all three, one after the
other at random moments while the group is consuming, then restarts them (six kills).
A SIGKILLed consumer stays in its group until its session expires (~10 s), which
stalls the group: killing every process in a round pays that stall once per round.

The product cannot be instrumented from here, so the windows named by the issue —
mid-transaction, after a commit but before the offset commit, after an assignment
call but before its commit — are hit statistically: each kill lands at a random
delay after the consumer group made progress (its lag was decreasing), and the
figures show which windows were hit: transactions the victim had open at the kill,
assignments the engine had answered but whose link was not committed yet, and
messages found already processed after the restart (applied and committed, offset
not committed).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
import pytest

from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.processes import ServiceProcess

ROUNDS = 2
PROCESSES = 3
SECONDS_PER_ROUND = 30  # the group stalls until the killed members' sessions expire


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


async def answered_unlinked(run: FaultRun) -> int:
    """Assignments the delivery engine has answered whose link is not committed yet:
    a kill now lands between an assignment call and its commit."""
    async with httpx.AsyncClient(base_url=run.engine_url, timeout=10) as engine:
        answered = {a["idempotency_key"] for a in (await engine.get("/api/v1/assignments")).json()}
    conn = await asyncpg.connect(run.target.admin_url)
    try:
        requested = await conn.fetch(
            "SELECT idempotency_key FROM assignments WHERE status = 'requested'"
        )
    finally:
        await conn.close()
    return len(answered & {r["idempotency_key"] for r in requested})


@pytest.mark.heavy
@pytest.mark.timeout(timeout_for(EVENTS) + ROUNDS * SECONDS_PER_ROUND)
async def test_sigkilled_orchestrators_lose_nothing_and_double_nothing(
    shared_target: Target, workdir: Path
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    marks = sorted(rng.uniform(0.15, 0.7) for _ in range(ROUNDS))
    open_at_kill, unlinked_at_kill = [], []
    async with FaultRun(
        shared_target, workdir, "kill9", events=EVENTS, seed=chosen, orchestrators=PROCESSES
    ) as run:
        run.feed()
        done = 0
        for mark in marks:
            # Only once the restarted processes have committed progress: mid-stream.
            done = await run.wait_processed_beyond(max(done, mark * run.figures.messages))
            for victim in rng.sample(run.orchestrators, len(run.orchestrators)):
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                unlinked_at_kill.append(await answered_unlinked(run))
                open_at_kill.append(await open_transactions(run.target.admin_url, victim))
                await victim.kill()
                run.fault(f"SIGKILL {victim.name} after {done}/{run.figures.messages} records")
            await asyncio.gather(*(p.start(ready_within=None) for p in run.orchestrators))
        await run.settle()
        run.figures.extra["transactions_open_at_kills"] = open_at_kill
        run.figures.extra["assignments_answered_unlinked_at_kills"] = unlinked_at_kill
        figures = await run.verify()

    assert figures.kills == PROCESSES * ROUNDS
    assert figures.crashes == 0
