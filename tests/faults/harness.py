"""The fault harness: one planned workload through the real fleet — orchestrator
processes and the certifier, each a `programmes run` process, with the reference
delivery engine (in this process: it plays the platform) — on real topics and a
real database, while a scenario breaks things;
then the end state is checked against the oracle (tests/support/oracle.py) and
against the invariants no fault may break (tests/faults/checks.py).

    async with FaultRun(target, workdir, "kill9", events=1000, seed=7) as run:
        run.feed()
        await run.wait_processed(0.3)
        ...                                  # the fault
        await run.settle()
        figures = await run.verify()         # asserts; returns the figures
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import httpx

from shared.db.pool import create_pool
from shared.fleet import CERTIFIER, FLEET, ORCHESTRATOR
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.faults.checks import output_event_ids, problems
from tests.support.cli import cli_environment
from tests.support.feeder import Copies, Feeder, planned_messages
from tests.support.fleet import delivery_engine
from tests.support.kafka import create_topics, lag
from tests.support.ledger_state import ledger_hash, read_ledger
from tests.support.oracle import expect
from tests.support.orchestration import committed_offsets
from tests.support.processes import ServiceProcess, environment, supervise
from tests.support.workload import Workload, plan_workload, publish_programmes

DEFAULT_EVENTS = 200
EVENTS = int(os.environ.get("FAULTS_EVENTS", DEFAULT_EVENTS))
TENANTS = 3
PARTITIONS = 6  # of the consumed topics: room for three orchestrator processes


def seed() -> int:
    """FAULTS_SEED, or a fresh seed (printed with the figures, to replay a failure)."""
    return int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))


def timeout_for(events: int, per_event: float = 0.06, fixed: float = 150.0) -> float:
    """A per-test timeout generous enough for a loaded two-core machine."""
    return fixed + events * per_event


@dataclass(frozen=True)
class Target:
    """Where a run happens: a broker, a database (as the services' role and as an
    administrator, who reads across tenants), and the run's own topic prefix."""

    bootstrap: str
    app_url: str
    admin_url: str
    prefix: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:10]}.")

    def settings(self) -> Settings:
        return Settings(
            database_url=self.app_url,
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
        )


@dataclass
class Figures:
    """What a scenario measured (docs/reliability.md reports them)."""

    scenario: str
    seed: int
    events: int
    messages: int
    enrolments: int
    seconds: float = 0.0
    drain_seconds: float = 0.0  # from the last fault to a settled fleet
    faults: list[str] = field(default_factory=list)
    orchestrator_starts: int = 0
    kills: int = 0
    crashes: int = 0  # processes that exited unasked (restarted by the supervisor)
    duplicates_seen: int = 0  # messages the orchestrators found already processed
    output_duplicates: int = 0  # extra records of an event id on the output topics
    engine_replays: int = 0  # assignment requests answered from the idempotency key
    completed: int = 0
    certified: int = 0
    reopened: int = 0
    state_hash: str = ""
    ledger_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> None:
        """Print one line (and append it to $FAULTS_FIGURES when set)."""
        line = json.dumps(asdict(self), sort_keys=True)
        print(f"\nFAULTS-FIGURES {line}", file=sys.stderr)
        path = os.environ.get("FAULTS_FIGURES")
        if path:
            with Path(path).open("a", encoding="utf-8") as out:
                out.write(line + "\n")


class FaultRun:
    """A workload, the fleet's processes, and the checks of the end state."""

    def __init__(
        self,
        target: Target,
        workdir: Path,
        scenario: str,
        *,
        events: int,
        seed: int,
        copies: Copies | None = None,
        orchestrators: int = 1,
        feed_seconds: float | None = None,
    ) -> None:
        self.target = target
        self._initial = orchestrators
        self._feed_seconds = feed_seconds
        self.workdir = workdir
        self.seed = seed
        self.copies = copies or Copies()
        self.scenario = scenario
        self.events = events
        self.workload: Workload
        self.feeder: Feeder
        self.orchestrators: list[ServiceProcess] = []
        self.processes: list[ServiceProcess] = []
        self.figures: Figures
        self.started_at = 0.0
        self.last_fault_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._env: dict[str, str] = {}
        self._exit_stack = contextlib.AsyncExitStack()
        self.engine_url = ""

    async def __aenter__(self) -> FaultRun:
        print(f"\nfault scenario {self.scenario}: seed {self.seed}", file=sys.stderr)
        began = time.monotonic()
        await self._create_topics()
        self._env = environment(cli_environment(self.target.settings()))
        engine = await self._exit_stack.enter_async_context(delivery_engine())
        self.engine_url = f"http://127.0.0.1:{engine.port}"
        self._env = {**self._env, "ASSIGNMENT_SERVICE_URL": self.engine_url}
        self._process("certifier")
        self.orchestrators = [self._process("orchestrator") for _ in range(self._initial)]
        starting = asyncio.gather(*(p.start() for p in self.processes))
        try:
            pool = await create_pool(self.target.settings())
            try:
                programmes = await publish_programmes(pool, TENANTS, self.seed)
            finally:
                await pool.close()
            await starting
        except BaseException:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await self.__aexit__(None, None, None)
            raise
        self.workload = plan_workload(programmes, self.events, self.seed)
        self.figures = Figures(
            self.scenario,
            self.seed,
            self.workload.events,
            planned_messages(self.workload, self.copies),
            len(self.workload.enrolments),
        )
        self.figures.extra["setup_seconds"] = round(time.monotonic() - began, 1)
        self._tasks.append(asyncio.create_task(supervise(self.processes)))
        self.feeder = Feeder(
            self.workload,
            self.target.bootstrap,
            self.target.prefix,
            self.engine_url,
            copies=self.copies,
            seed=self.seed,
            rate=self.figures.messages / self._feed_seconds if self._feed_seconds else None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self.processes))
        await self._exit_stack.aclose()

    def _process(self, name: str) -> ServiceProcess:
        index = sum(1 for p in self.processes if p.name.startswith(name))
        process = ServiceProcess(
            f"{name}-{index}",
            (name,),
            self._env,
            self.workdir / f"{name}-{index}.log",
        )
        self.processes.append(process)
        return process

    @property
    def certifier(self) -> ServiceProcess:
        return self.processes[0]

    async def _create_topics(self) -> None:
        types = sorted({t for s in FLEET for t in (*s.consumes, *s.produces)})
        topics = [topic_for(t, self.target.prefix) for t in types]
        await create_topics(
            self.target.bootstrap, [*topics, *map(dead_letter_topic, topics)], PARTITIONS
        )

    async def add_orchestrator(self) -> ServiceProcess:
        """Start one more orchestrator process (ready when this returns)."""
        process = self._process("orchestrator")
        self.orchestrators.append(process)
        await process.start()
        return process

    def feed(self) -> None:
        """Start sending the workload (in the background)."""
        self.started_at = time.monotonic()
        self._tasks.append(asyncio.create_task(self.feeder.run()))

    def fault(self, description: str) -> None:
        """Record a fault just injected (its end starts the drain clock)."""
        self.figures.faults.append(description)
        self.last_fault_at = time.monotonic()
        print(f"fault: {description}", file=sys.stderr)

    async def processed(self) -> int | None:
        """Records of the consumed topics the orchestrators committed (None: broker away)."""
        topics = {topic_for(t, self.target.prefix) for t in ORCHESTRATOR.consumes}
        try:
            offsets = await committed_offsets(self.target.bootstrap, _group(ORCHESTRATOR, self))
        except Exception:  # the broker may be down on purpose
            return None
        return sum(offset for (topic, _), offset in offsets.items() if topic in topics)

    async def wait_processed(self, fraction: float, within: float = 600.0) -> int:
        """Wait until `fraction` of the planned records are committed; returns how many are."""
        return await self.wait_processed_beyond(fraction * self.figures.messages, within)

    async def wait_processed_beyond(self, records: float, within: float = 600.0) -> int:
        """Wait until more than `records` records are committed; returns how many are."""
        async with asyncio.timeout(within):
            while True:
                self._raise_if_failed()
                done = await self.processed()
                if done is not None and done > records:
                    return done
                await asyncio.sleep(0.1)

    async def settle(self, within: float | None = None) -> None:
        """Wait until everything is fed, consumed, relayed, assigned — twice in a row."""
        within = within or timeout_for(self.events) - 30
        calm = 0
        async with asyncio.timeout(within):
            while calm < 2:
                self._raise_if_failed()
                calm = calm + 1 if await self._quiet() else 0
                await asyncio.sleep(0.5)
        now = time.monotonic()
        self.figures.seconds = round(now - self.started_at, 1)
        self.figures.drain_seconds = round(now - (self.last_fault_at or self.started_at), 1)

    def _raise_if_failed(self) -> None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a background task of the run failed") from task.exception()

    async def _quiet(self) -> bool:
        if not self.feeder.done.is_set():
            return False
        prefix = self.target.prefix
        try:
            for service in (ORCHESTRATOR, CERTIFIER):
                topics = [topic_for(t, prefix) for t in service.consumes]
                if await lag(self.target.bootstrap, _group(service, self), topics):
                    return False
            conn = await asyncpg.connect(self.target.admin_url, timeout=5)
            try:
                busy = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
                    " + (SELECT count(*) FROM assignments WHERE status = 'requested')"
                )
            finally:
                await conn.close()
        except Exception:  # a server restarting: not quiet yet
            return False
        return bool(busy == 0)

    async def snapshot(self) -> tuple[str, str]:
        """The ledger hash and a hash of the output event ids, as they are now."""
        state = await read_ledger(self.target.admin_url)
        await output_event_ids(self)
        return ledger_hash(state), str(self.figures.extra["output_event_ids"])

    async def engine_stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(base_url=self.engine_url, timeout=10) as client:
            stats: dict[str, int] = (await client.get("/_admin/stats")).json()
        return stats

    async def verify(self, *, report: bool = True) -> Figures:
        """Check the end state; record (and print) the figures; fail on any problem."""
        began = time.monotonic()
        state = await read_ledger(self.target.admin_url)
        found = await problems(self, state, expect(self.workload))
        figures = self.figures
        figures.orchestrator_starts = sum(p.starts for p in self.orchestrators)
        figures.kills = sum(p.kills for p in self.processes)
        figures.crashes = sum(len(p.crashes) for p in self.processes)
        figures.duplicates_seen = sum(p.duplicates() for p in self.orchestrators)
        figures.engine_replays = (await self.engine_stats())["replayed"]
        figures.extra["crash_logs"] = [c for p in self.processes for c in p.crashes]
        figures.extra["result"] = "fail" if found else "pass"
        figures.extra["verify_seconds"] = round(time.monotonic() - began, 1)
        if report or found:
            figures.report()
        assert not found, f"seed {self.seed}: {len(found)} problem(s):\n" + "\n".join(found[:30])
        return figures


def _group(service: Any, run: FaultRun) -> str:
    return str(service.group_id(run.target.prefix))
