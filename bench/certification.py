"""The certifier's throughput: one process, one enrolment.completed per completed
enrolment (seeded as the orchestrator leaves them), timed live like the
orchestrator (first send to lag 0)."""

from __future__ import annotations

from collections.abc import Sequence

from bench import seed, workload
from bench.context import T0, Context
from bench.kafka import Message
from bench.processes import fleet
from bench.stack import scratch, topics
from bench.throughput import live
from shared.fleet import CERTIFIER
from tests.support.programmes import Sample


async def certifier(ctx: Context) -> None:
    """`runs` runs on fresh copies, `certificates` completions spread over the tenants."""
    async with ctx.seeded("certifier") as (source, samples):
        url = ctx.stack.conns.app(source)
        per_tenant = -(-ctx.sizes.certificates // len(samples))
        batches = []
        for sample in samples:
            done = await seed.completed_enrolments(url, sample, per_tenant, T0)
            batches.append(workload.completions(sample, done, T0))
        await seed.past(ctx.stack, source, samples, per_tenant, T0)
        messages = [m for group in zip(*batches, strict=True) for m in group]
        for run in range(ctx.runs):
            rate = await _run(ctx, source, messages, samples if run == 0 else None)
            ctx.results.add("certifier", rate)


async def _run(
    ctx: Context, source: str, messages: Sequence[Message], samples: list[Sample] | None
) -> float:
    """One run; with `samples`, also notes how many certificates were issued."""
    async with (
        scratch(ctx.stack, source, "cert") as database,
        topics(ctx.stack, "cert", ctx.sizes.partitions) as prefix,
        fleet(ctx.env(database, prefix), ctx.logs / "certifier", ctx.memory) as running,
    ):
        await running.start("certifier")
        topic = f"{prefix}enrolment.completed"
        rate = await live(ctx, topic, CERTIFIER.group_id(prefix), 1, messages, running.check)
        if samples:
            url = ctx.stack.conns.app(database)
            issued = await seed.count(
                url, samples, "SELECT count(*) FROM certificates WHERE issued_at >= $1", T0
            )
            ctx.results.note(
                f"certifier: {issued:,} certificates for {len(messages):,} completions"
            )
    return rate
