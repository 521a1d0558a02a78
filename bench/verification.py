"""The public verification endpoint under load: one certifier process, valid tokens
(the rate limiter only counts failed look-ups), JSON answers, loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench import seed
from bench.context import Context
from bench.httpload import hammer
from bench.latency import percentile
from bench.processes import fleet
from bench.stack import topics

WARM_UP = 1.0
HOST = "127.0.0.1"


async def verification(ctx: Context) -> None:
    """Per run: /healthz (the ceiling), then /certs/verify/{token}, same client."""
    count = ctx.sizes.verify_tokens
    async with ctx.seeded("verify") as (database, samples):
        url = ctx.stack.conns.app(database)
        issued = datetime.now(UTC) - timedelta(days=30)
        await seed.certificates(
            url, samples[0], count, first_issued_at=issued, spacing=timedelta(seconds=1)
        )
        paths = [f"/certs/verify/{t}" for t in await seed.tokens(url, samples[0], count)]
        async with (
            topics(ctx.stack, "verify", ctx.sizes.partitions) as prefix,
            fleet(ctx.env(database, prefix), ctx.logs / "verification", ctx.memory) as running,
        ):
            certifier = await running.start("certifier")
            await _measure(ctx, certifier.port, paths)


async def _measure(ctx: Context, port: int, paths: list[str]) -> None:
    connections, seconds = ctx.sizes.verify_connections, ctx.sizes.verify_seconds
    await hammer(HOST, port, paths, connections=connections, seconds=WARM_UP)
    failures, busiest = 0, 0.0
    for _ in range(ctx.runs):
        ceiling = await hammer(HOST, port, ["/healthz"], connections=connections, seconds=seconds)
        load = await hammer(HOST, port, paths, connections=connections, seconds=seconds)
        failures += ceiling.failures + load.failures
        busiest = max(busiest, ceiling.cpu_share, load.cpu_share)
        ctx.results.add("http", ceiling.rate)
        ctx.results.add("verify_rate", load.rate)
        ctx.results.add("verify_p99", percentile(load.latencies_ms, 0.99))
    ctx.results.note(
        f"verification: {connections} connections; the load generator used at most "
        f"{busiest:.0%} of one core; {failures} answers were not 200"
    )
