"""The renewer: one pass (`programmes renew --now T`, the CronJob's command) over
`renewer_certificates` active certificates of which `due_percent` are inside their
renewal window at T. Timed as the command's wall time, start-up included (the
start-up alone is noted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bench import seed
from bench.context import Context
from bench.processes import command
from bench.stack import scratch, topics
from tests.support.programmes import Sample

NOW = datetime(2027, 1, 1, tzinfo=UTC)


async def renewer(ctx: Context) -> None:
    total = ctx.sizes.renewer_certificates
    due = max(1, round(total * ctx.sizes.due_percent / 100))
    async with ctx.seeded("renewer") as (source, samples):
        await _certificates(ctx.stack.conns.app(source), samples[0], total, due)
        for run in range(ctx.runs):
            async with (
                scratch(ctx.stack, source, "renew") as database,
                topics(ctx.stack, "renew", ctx.sizes.partitions) as prefix,
            ):
                env = ctx.env(database, prefix)
                seconds, out = await command(
                    env,
                    "renew",
                    "--now",
                    NOW.isoformat(),
                    "--json",
                    memory=ctx.memory,
                    name="renewer",
                )
                ctx.results.add("renewer", seconds)
                if run == 0:
                    startup, _ = await command(env, "--help")
                    opened = json.loads(out)["renewals_opened"]
                    ctx.results.note(
                        f"renewer: {opened:,} renewals opened for {due:,} due of {total:,} "
                        f"certificates; `programmes --help` alone takes {startup:.1f} s"
                    )


async def _certificates(url: str, sample: Sample, total: int, due: int) -> None:
    # P1Y validity, P30D window. Issued 300 to 80 days before NOW: they expire 65
    # to 285 days after it, their windows still shut.
    quiet = total - due
    await seed.certificates(
        url,
        sample,
        quiet,
        first_issued_at=NOW - timedelta(days=300),
        spacing=timedelta(days=220) / max(1, quiet),
    )
    # Issued 360 to 357 days before NOW: expiring within 5 to 8 days, window open.
    await seed.certificates(
        url, sample, due, first_issued_at=NOW - timedelta(days=360), spacing=timedelta(days=3) / due
    )
