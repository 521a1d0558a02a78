"""The orchestrator's sustained throughput, as a black box: real processes, real
topics, the consumer group watched from outside.

A live run: the services start on empty topics; once the group is stable with
every partition held, the workload is produced as fast as the broker takes it.
The figure is events / (the moment the group's committed offsets reach the end
of the topic, lag 0 - the moment of the first send).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from bench import seed
from bench.context import T0, Context, Submissions
from bench.kafka import GroupWatch, Message, dead_letters, partitions_of, produce
from bench.processes import fleet
from bench.stack import scratch, topics
from shared.fleet import ORCHESTRATOR
from tests.support.programmes import Sample

SETTLE = 2.0  # seconds for every subscriber of a new process to join its group


def patience(events: int) -> float:
    """How long a drain may take before the run is declared stuck (100 events/s)."""
    return 300 + events / 100


async def orchestrator(ctx: Context) -> None:
    """One orchestrator process."""
    source = await ctx.submissions()
    for run in range(ctx.runs):
        rate = await _orchestrators(ctx, source, 1, note=run == 0)
        ctx.results.add("orchestrator", rate)


async def scaling(ctx: Context) -> None:
    """Two orchestrator processes in one group."""
    source = await ctx.submissions()
    for run in range(ctx.runs):
        ctx.results.add("scaling", await _orchestrators(ctx, source, 2, note=run == 0))


async def _orchestrators(ctx: Context, source: Submissions, processes: int, *, note: bool) -> float:
    messages = source.messages[: ctx.sizes.events]
    label = f"orch{processes}"
    async with (
        scratch(ctx.stack, source.database, label) as database,
        topics(ctx.stack, label, ctx.sizes.partitions) as prefix,
        fleet(ctx.env(database, prefix), ctx.logs / label, ctx.memory) as running,
    ):
        engine = await running.start("delivery-engine")
        for _ in range(processes):
            await running.start("orchestrator", env={"ASSIGNMENT_SERVICE_URL": engine.url})
        topic = f"{prefix}submission.created"
        rate = await live(
            ctx, topic, ORCHESTRATOR.group_id(prefix), processes, messages, running.check
        )
        if note:
            await note_ledger(ctx, f"{processes} orchestrator(s)", database, source.samples, prefix)
    return rate


async def live(
    ctx: Context,
    topic: str,
    group: str,
    members: int,
    messages: Sequence[Message],
    alive: Callable[[], None] = lambda: None,
) -> float:
    tps = partitions_of(topic, ctx.sizes.partitions)
    async with GroupWatch(ctx.stack.conns.kafka) as watch:
        await watch.assigned(group, topic, members=members, partitions=len(tps))
        await asyncio.sleep(SETTLE)
        await watch.assigned(group, topic, members=members, partitions=len(tps))
        count, first = await produce(ctx.stack.conns.kafka, topic, messages)
        done = await watch.drained(group, tps, within=patience(count), alive=alive)
    return count / (done - first)


async def note_ledger(
    ctx: Context, who: str, database: str, samples: Sequence[Sample], prefix: str
) -> None:
    """What the services left behind, so a figure from a failing service shows."""
    url = ctx.stack.conns.app(database)
    # Not the previous cohort's (seed.past): everything of a run is at T0 or later.
    submissions = await seed.count(
        url, samples, "SELECT count(*) FROM submissions WHERE submitted_at >= $1", T0
    )
    completed = await seed.count(
        url,
        samples,
        "SELECT count(*) FROM enrolments"
        " WHERE status IN ('completed', 'certified') AND completed_at >= $1",
        T0,
    )
    consumed = [f"{prefix}{t}" for t in ORCHESTRATOR.consumes]
    dead = await dead_letters(ctx.stack.conns.kafka, consumed)
    ctx.results.note(
        f"{who}: {submissions:,} submissions recorded, {completed:,} enrolments completed, "
        f"{dead} dead letters"
    )
