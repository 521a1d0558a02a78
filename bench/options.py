"""What a benchmark run measures and at which sizes: two presets (`smoke`, `full`),
any size overridable on the command line."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    """Every size a scenario reads; each is also a `--kebab-case` option."""

    events: int  # submission.created events per orchestrator run (and the Kafka ceiling)
    naive_events: int  # events per run of the naive per-message baseline
    pg_rows: int  # rows per run of the batched PostgreSQL ceiling
    pg_single_rows: int  # rows per run of the one-row-per-transaction ceiling
    tenants: int  # tenants the seeded enrolments are spread over
    partitions: int  # partitions of every consumed topic
    latency_rate: int  # offered load of the latency scenario, events/s
    latency_seconds: float  # how long the paced producer runs
    replay_events: int  # already-processed events the replay goes over
    certificates: int  # enrolment.completed events per certifier run
    renewer_certificates: int  # active certificates the renewer pass scans
    due_percent: float  # share of them due for renewal
    verify_tokens: int  # distinct certificates the verification load asks for
    verify_seconds: float  # duration of each verification load run
    verify_connections: int  # concurrent keep-alive connections of the load generator


SMOKE = Sizes(
    events=2_000,
    naive_events=400,
    pg_rows=4_000,
    pg_single_rows=400,
    tenants=2,
    partitions=6,
    latency_rate=100,
    latency_seconds=5,
    replay_events=2_000,
    certificates=300,
    renewer_certificates=10_000,
    due_percent=1.0,
    verify_tokens=200,
    verify_seconds=3,
    verify_connections=16,
)
FULL = Sizes(
    events=200_000,
    naive_events=10_000,
    pg_rows=200_000,
    pg_single_rows=20_000,
    tenants=4,
    partitions=12,
    latency_rate=1_000,
    latency_seconds=60,
    replay_events=1_000_000,
    certificates=50_000,
    renewer_certificates=1_000_000,
    due_percent=1.0,
    verify_tokens=10_000,
    verify_seconds=20,
    verify_connections=32,
)
SCALES = {"smoke": SMOKE, "full": FULL}

SCENARIOS = (
    "ceiling",  # aiokafka consume + commit with no work; PostgreSQL upserts
    "naive",  # one transaction and one offset commit per message
    "orchestrator",  # one orchestrator process, submission.created to lag 0
    "scaling",  # the same with two orchestrator processes
    "latency",  # paced load: produce -> ledger, last submission -> certificate
    "replay",  # offsets reset to earliest over already-processed events
    "certifier",  # enrolment.completed -> certificates
    "renewer",  # one pass over many certificates, a few due
    "verification",  # GET /certs/verify/{token} under concurrent load
)


@dataclass(frozen=True)
class Options:
    """A parsed command line."""

    scale: str
    sizes: Sizes
    runs: int
    scenarios: tuple[str, ...]
    output: Path
    log_level: str
    keep_logs: Path | None = None
    event_loop: str = "uvloop"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench`."""
    parse = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the fleet on the real Kafka broker and PostgreSQL: "
        "prints a table and writes JSON (see README, Benchmarks).",
    )
    parse.add_argument("--scale", choices=sorted(SCALES), default="smoke", help="size preset")
    parse.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parse.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios (default all): {', '.join(SCENARIOS)}",
    )
    parse.add_argument(
        "--output", type=Path, default=Path("bench/results"), help="where JSON results go"
    )
    parse.add_argument(
        "--log-level",
        default="INFO",
        help="PROGRAMMES_LOG_LEVEL of the services (INFO, as deployed: one line per message)",
    )
    parse.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="PROGRAMMES_EVENT_LOOP of the services (uvloop, as deployed)",
    )
    parse.add_argument(
        "--keep-logs",
        type=Path,
        default=None,
        help="keep the services' logs in this directory (default: a temporary one)",
    )
    sizes = parse.add_argument_group("sizes (override the preset)")
    for field in fields(Sizes):
        kind = float if field.type == "float" else int
        sizes.add_argument(_option(field.name), dest=field.name, type=kind, default=None)
    return parse


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line; fails (exit 2) on an unknown scenario or a bad size."""
    parse = parser()
    args = parse.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parse.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.runs < 1:
        parse.error("--runs must be at least 1")
    overrides = {f.name: getattr(args, f.name) for f in fields(Sizes)}
    sizes = dataclasses.replace(
        SCALES[args.scale], **{k: v for k, v in overrides.items() if v is not None}
    )
    if any(getattr(sizes, f.name) <= 0 for f in fields(Sizes)):
        parse.error("every size must be positive")
    ordered = tuple(s for s in SCENARIOS if s in scenarios)
    return Options(
        args.scale,
        sizes,
        args.runs,
        ordered,
        args.output,
        args.log_level,
        args.keep_logs,
        args.event_loop,
    )
