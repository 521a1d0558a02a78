"""Replay: an orchestrator group reset to earliest over events it already
processed (the inbox de-duplicates them).

The events are produced first and processed once (that first pass is reported
too); then, `runs` times: stop the process (the reset refuses a group with live
members), `programmes replay --group programmes-orchestrator --to earliest
--topic submission.created --execute`, start it again. A pass is timed from the
first moment a member of the restarted group holds a partition of the topic (it
may fetch from then on) to lag 0.
"""

from __future__ import annotations

from bench import seed, workload
from bench.context import T0, Context, interleaved
from bench.kafka import GroupWatch, partitions_of, produce
from bench.processes import Fleet, Service, command, fleet
from bench.stack import topics
from bench.throughput import note_ledger, patience
from shared.fleet import ORCHESTRATOR


async def replay(ctx: Context) -> None:
    """A first pass over `replay_events`, then `runs` replays of them."""
    count = ctx.sizes.replay_events
    async with ctx.seeded("replay") as (database, samples):
        url = ctx.stack.conns.app(database)
        per_tenant = -(-workload.learners_for(count) // len(samples))
        learners = interleaved(
            [await seed.linked_enrolments(url, s, per_tenant, T0) for s in samples]
        )
        async with (
            topics(ctx.stack, "replay", ctx.sizes.partitions) as prefix,
            fleet(ctx.env(database, prefix), ctx.logs / "replay", ctx.memory) as running,
        ):
            topic = f"{prefix}submission.created"
            planned = workload.messages(workload.submissions(learners, T0), count)
            produced, _ = await produce(ctx.stack.conns.kafka, topic, planned)
            engine = await running.start("delivery-engine")
            replaying = Replaying(ctx, running, {"ASSIGNMENT_SERVICE_URL": engine.url}, prefix)
            ctx.results.add("replay_first_pass", await replaying.drain(produced))
            for _ in range(ctx.runs):
                await replaying.reset()
                ctx.results.add("replay", await replaying.drain(produced))
            await note_ledger(ctx, "replay", database, samples, prefix)


class Replaying:
    """The one orchestrator of the replay scenario, stopped and started again."""

    def __init__(self, ctx: Context, running: Fleet, env: dict[str, str], prefix: str) -> None:
        self.ctx, self.running, self.env = ctx, running, env
        self.topic = f"{prefix}submission.created"
        self.group = ORCHESTRATOR.group_id(prefix)
        self.service: Service | None = None

    async def reset(self) -> None:
        """Stop the process and move its group back to the start of the topic."""
        if self.service is not None:
            await self.running.stop(self.service)
        await command(
            self.running.env,
            *("replay", "--group", ORCHESTRATOR.group_id(), "--to", "earliest"),
            *("--topic", "submission.created", "--execute", "--json"),
        )

    async def drain(self, count: int) -> float:
        """Start the process; events/s from its first partition held to lag 0."""
        tps = partitions_of(self.topic, self.ctx.sizes.partitions)
        async with GroupWatch(self.ctx.stack.conns.kafka) as watch:
            self.service = await self.running.start("orchestrator", ready=False, env=self.env)
            started = await watch.consuming(self.group, self.topic)
            done = await watch.drained(
                self.group, tps, within=patience(count), alive=self.running.check
            )
        await self.service.ready()
        return count / (done - started)
