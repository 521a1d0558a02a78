"""Latency at a steady offered load, orchestrator and certifier running.

A paced producer sends submission.created at `latency_rate` events/s (linger 0),
noting the time of each send. A poller asks the database every 5 ms (one query), as
the services' role under the tenant, which of the outstanding submissions have a
`submissions` row (written in the transaction that updates the ledger) and which
completed enrolments have a live certificate. A row seen by a query was
committed before that query's snapshot, so the time it is counted at is the
query's start: each latency is an upper bound, at most one poll interval (plus
one query) late. `recorded_at`/`received_at` are not used: `now()` is the start
of the transaction, not its commit. Events sent in the first 10 % of the run
(at most 2 s) are left out (warm-up). From the end of the warm-up to the last
send, the CPU time each part of the stack used is read as well (bench/cpu.py).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from dataclasses import dataclass, field

import asyncpg

from bench import seed, workload
from bench.context import T0, Context
from bench.cpu import CpuClock, shares
from bench.kafka import GroupWatch, bulk_producer
from bench.processes import fleet
from bench.stack import connect, scratch, topics
from shared.fleet import CERTIFIER, ORCHESTRATOR

POLL = 0.005
WINDOW = 1_000  # oldest outstanding ids asked about per poll (a backlog means seconds anyway)
PATIENCE = 60.0  # seconds after the last send before outstanding ones are censored
SETTLE = 2.0
# One query per poll for both kinds (the poller shares the cores it measures):
# which of these submissions have a row, and which of these enrolments a live
# certificate, told apart by `certificate`.
_SEEN = (
    "SELECT id, false AS certificate FROM submissions WHERE id = ANY($1::uuid[])"
    " UNION ALL"
    " SELECT enrolment_id, true FROM certificates"
    " WHERE enrolment_id = ANY($2::uuid[]) AND status <> 'revoked'"
)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Tracker:
    """Outstanding submissions and certificates, and the latencies seen so far (ms)."""

    warm_until: float = 0.0
    submissions: dict[uuid.UUID, float] = field(default_factory=dict)
    certificates: dict[uuid.UUID, float] = field(default_factory=dict)
    ledger_ms: list[float] = field(default_factory=list)
    certificate_ms: list[float] = field(default_factory=list)

    @property
    def outstanding(self) -> int:
        return len(self.submissions) + len(self.certificates)

    def expect(self, submission: workload.Submission, sent: float) -> None:
        self.submissions[submission.submission_id] = sent
        if submission.completes:
            self.certificates[submission.enrolment_id] = sent

    def _seen(
        self, pending: dict[uuid.UUID, float], ids: list[uuid.UUID], at: float
    ) -> list[float]:
        sent = [pending.pop(i) for i in ids]
        return [(at - s) * 1000 for s in sent if s >= self.warm_until]

    async def poll(self, conn: asyncpg.Connection) -> None:
        if not self.outstanding:
            return
        at = time.perf_counter()
        rows = await conn.fetch(
            _SEEN,
            list(itertools.islice(self.submissions, WINDOW)),
            list(itertools.islice(self.certificates, WINDOW)),
        )
        self.ledger_ms += self._seen(
            self.submissions, [r["id"] for r in rows if not r["certificate"]], at
        )
        self.certificate_ms += self._seen(
            self.certificates, [r["id"] for r in rows if r["certificate"]], at
        )

    def censor(self) -> int:
        """Count what is still outstanding as seen now (a lower bound on its
        latency, so that a stalled service cannot flatter the percentiles)."""
        count = self.outstanding
        now = time.perf_counter()
        self.ledger_ms += self._seen(self.submissions, list(self.submissions), now)
        self.certificate_ms += self._seen(self.certificates, list(self.certificates), now)
        return count

    async def run(self, conn: asyncpg.Connection) -> None:
        while True:
            await self.poll(conn)
            await asyncio.sleep(POLL)

    async def settled(self, within: float) -> None:
        deadline = time.monotonic() + within
        # Polls state the poller task changes: there is no event to wait on.
        while self.outstanding and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def latency(ctx: Context) -> None:
    """`runs` paced runs of `latency_seconds` at `latency_rate` events/s, one tenant."""
    events = int(ctx.sizes.latency_rate * ctx.sizes.latency_seconds)
    async with ctx.seeded("latency") as (source, samples):
        url = ctx.stack.conns.app(source)
        count = workload.learners_for(events)
        learners = await seed.linked_enrolments(url, samples[0], count, T0)
        await seed.past(ctx.stack, source, samples[:1], count, T0)
        planned = list(workload.submissions(learners, T0))[:events]
        for _ in range(ctx.runs):
            _record(ctx, *await _run(ctx, source, samples[0].tenant_id, planned))


async def _run(
    ctx: Context, source: str, tenant: uuid.UUID, planned: list[workload.Submission]
) -> tuple[Tracker, float, dict[str, float]]:
    async with (
        scratch(ctx.stack, source, "lat") as database,
        topics(ctx.stack, "lat", ctx.sizes.partitions) as prefix,
        fleet(ctx.env(database, prefix), ctx.logs / "latency", ctx.memory) as running,
    ):
        engine = await running.start("delivery-engine")
        await running.start("orchestrator", env={"ASSIGNMENT_SERVICE_URL": engine.url})
        await running.start("certifier")
        await _groups_ready(ctx, prefix)
        conn = await connect(ctx.stack.conns.app(database))
        await conn.execute("SELECT set_config('app.tenant_id', $1, false)", str(tenant))
        try:
            return await _paced(ctx, conn, f"{prefix}submission.created", planned)
        finally:
            await conn.close()


async def _groups_ready(ctx: Context, prefix: str) -> None:
    partitions = ctx.sizes.partitions
    async with GroupWatch(ctx.stack.conns.kafka) as watch:
        for group, topic in (
            (ORCHESTRATOR.group_id(prefix), f"{prefix}submission.created"),
            (CERTIFIER.group_id(prefix), f"{prefix}enrolment.completed"),
        ):
            await watch.assigned(group, topic, members=1, partitions=partitions)
        await asyncio.sleep(SETTLE)


async def _cpu_from(at: float, services: dict[int, str]) -> CpuClock:
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    return await asyncio.to_thread(CpuClock.read, services)


async def _paced(
    ctx: Context, conn: asyncpg.Connection, topic: str, planned: list[workload.Submission]
) -> tuple[Tracker, float, dict[str, float]]:
    """Send at the offered rate and follow every event to its rows; the CPU each
    part of the stack used from the end of the warm-up to the last send."""
    rate = ctx.sizes.latency_rate
    producer = bulk_producer(ctx.stack.conns.kafka, linger_ms=0)
    await producer.start()
    tracker = Tracker()
    start = time.perf_counter()
    tracker.warm_until = start + min(2.0, 0.1 * ctx.sizes.latency_seconds)
    polling = asyncio.create_task(tracker.run(conn))
    cpu_start = asyncio.create_task(_cpu_from(tracker.warm_until, ctx.memory.services))
    try:
        for i, submission in enumerate(planned):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tracker.expect(submission, time.perf_counter())
            key, value = submission.message
            await producer.send(topic, value, key=key)
        offered = len(planned) / (time.perf_counter() - start)
        cpu = shares(await cpu_start, await asyncio.to_thread(CpuClock.read, ctx.memory.services))
        await producer.flush()
        await tracker.settled(within=PATIENCE)
    finally:
        polling.cancel()
        cpu_start.cancel()
        await asyncio.gather(polling, cpu_start, return_exceptions=True)
        await producer.stop()
    return tracker, offered, cpu


def _record(ctx: Context, tracker: Tracker, offered: float, cpu: dict[str, float]) -> None:
    censored = tracker.censor()
    if censored:
        ctx.results.note(
            f"latency: {censored} submissions/certificates not seen {PATIENCE:.0f} s after "
            "the last send, counted with the time waited"
        )
    ctx.results.add("offered_rate", offered)
    for part, percent in cpu.items():
        ctx.results.add(f"cpu_{part}", percent)
    for name, values in (("ledger", tracker.ledger_ms), ("certificate", tracker.certificate_ms)):
        if not values:
            raise RuntimeError(f"latency: no {name} was observed")
        ctx.results.add(f"{name}_p50", percentile(values, 0.50))
        ctx.results.add(f"{name}_p99", percentile(values, 0.99))
        ctx.results.add(f"{name}_max", max(values))
