"""Scenarios 3 and 4 (issue #6): the Kafka broker, then PostgreSQL, restarted in the
middle of a run — on a private stack of this module's own, never the shared one.

3. Broker stopped and started again at about one third and one half of the run →
   everything processed, nothing doubled.
4. PostgreSQL stopped (fast: every session cut, open transactions rolled back) and
   started again mid-run → no partial ledger rows, nothing dead-lettered for it,
   everything processed after recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import EVENTS, FaultRun, Target, seed, timeout_for
from tests.support.private_stack import PrivateStack, private_stack

STACK_SECONDS = 60  # starting the private stack, restarts included


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateStack]:
    """A broker and a database server of this module's own (deleted at the end)."""
    with private_stack() as stack:
        yield stack


@pytest.fixture
async def private_target(private: PrivateStack) -> Target:
    database = await private.new_database()
    return Target(private.bootstrap, database.app_url, database.admin_url)


@pytest.mark.heavy
@pytest.mark.timeout(timeout_for(EVENTS) + STACK_SECONDS)
async def test_broker_restarted_twice_mid_run_loses_nothing_and_doubles_nothing(
    private: PrivateStack, private_target: Target, workdir: Path
) -> None:
    async with FaultRun(
        private_target, workdir, "broker-restart", events=EVENTS, seed=seed(), orchestrators=2
    ) as run:
        run.feed()
        for mark in (1 / 3, 1 / 2):
            done = await run.wait_processed(mark)
            down = await private.restart_kafka()
            run.fault(
                f"broker restarted after {done}/{run.figures.messages} records ({down:.1f} s)"
            )
        await run.settle()
        await run.verify()


@pytest.mark.heavy
@pytest.mark.timeout(timeout_for(EVENTS) + STACK_SECONDS)
async def test_database_restarted_mid_run_leaves_no_partial_rows_and_no_dead_letters(
    private: PrivateStack, private_target: Target, workdir: Path
) -> None:
    async with FaultRun(
        private_target, workdir, "database-restart", events=EVENTS, seed=seed(), orchestrators=2
    ) as run:
        run.feed()
        done = await run.wait_processed(0.4)
        down = await private.restart_postgres()
        run.fault(f"database restarted after {done}/{run.figures.messages} records ({down:.1f} s)")
        await run.settle()
        await run.verify()
