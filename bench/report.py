"""Figures: what each one is, its target, its ceiling; medians of the runs; the
table printed at the end and the JSON written next to it."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.options import Options


@dataclass(frozen=True)
class Target:
    """`value >= bound` (at_least) or `value <= bound`."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {_number(self.bound)}"


def at_least(bound: float) -> Target:
    return Target(bound, True)


def at_most(bound: float) -> Target:
    return Target(bound, False)


@dataclass(frozen=True)
class Kind:
    """What a figure means: label, unit, target, and the ceilings it is compared to."""

    label: str
    unit: str
    target: Target | None = None
    ceilings: tuple[str, ...] = ()


CEILINGS = {"kafka": "Kafka", "pg_row": "PG 1-row", "pg_batch": "PG batch", "http": "/healthz"}
_THROUGHPUT = ("kafka", "pg_batch")
KINDS: dict[str, Kind] = {
    "kafka": Kind("Ceiling: aiokafka consume + commit, no work", "events/s"),
    "pg_row": Kind("Ceiling: PG 1-row upsert, 1 tx each, RLS", "rows/s"),
    "pg_batch": Kind("Ceiling: PG unnest upsert, 1,000 rows/tx, RLS", "rows/s"),
    "naive": Kind(
        "Naive: 1 tx + 1 offset commit per message", "events/s", None, ("kafka", "pg_row")
    ),
    "orchestrator": Kind("Orchestrator, 1 process", "events/s", at_least(5000), _THROUGHPUT),
    "orchestrator_vs_naive": Kind("Orchestrator ÷ naive", "x", at_least(5)),
    "scaling": Kind("Orchestrator, 2 processes", "events/s", None, _THROUGHPUT),
    "scaling_ratio": Kind("2 processes ÷ 1", "x", at_least(1.6)),
    "ledger_p50": Kind("Produce → ledger commit, p50", "ms"),
    "ledger_p99": Kind("Produce → ledger commit, p99", "ms", at_most(50)),
    "ledger_max": Kind("Produce → ledger commit, max", "ms"),
    "certificate_p50": Kind("Last submission → certificate, p50", "ms"),
    "certificate_p99": Kind("Last submission → certificate, p99", "ms", at_most(250)),
    "certificate_max": Kind("Last submission → certificate, max", "ms"),
    "offered_rate": Kind("Latency: offered load achieved", "events/s"),
    # What each part of the stack used during the latency runs (bench/cpu.py).
    **{
        f"cpu_{part}": Kind(f"Latency: CPU of {name}", "% of a core")
        for part, name in (
            ("orchestrator", "orchestrator"),
            ("certifier", "certifier"),
            ("postgresql", "PostgreSQL"),
            ("kafka", "Kafka broker"),
            ("harness", "harness (producer, poller)"),
            ("other", "everything else"),
            ("machine", "whole machine"),
        )
    },
    "replay_first_pass": Kind("Replay set, first pass (1 process)", "events/s", None, _THROUGHPUT),
    "replay": Kind(
        "Replay from earliest, already processed", "events/s", at_least(20000), _THROUGHPUT
    ),
    "certifier": Kind("Certifier, 1 process", "certificates/s", at_least(2000), _THROUGHPUT),
    "renewer": Kind("Renewer: one pass (programmes renew)", "s", at_most(10)),
    "http": Kind("Ceiling: GET /healthz, same server + client", "req/s"),
    "verify_rate": Kind(
        "Verification GET /certs/verify/{token}", "req/s", at_least(2000), ("http",)
    ),
    "verify_p99": Kind("Verification p99", "ms", at_most(20)),
    "rss_orchestrator": Kind("Peak RSS orchestrator", "MB", at_most(200)),
    "rss_certifier": Kind("Peak RSS certifier", "MB", at_most(200)),
    "rss_renewer": Kind("Peak RSS renewer (programmes renew)", "MB", at_most(200)),
    "rss_delivery-engine": Kind("Peak RSS delivery engine (reference)", "MB"),
}


@dataclass
class Results:
    """Every run's value of every figure, plus notes from the scenarios."""

    options: Options
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # scenarios that raised
    load_at_start: float = field(default_factory=lambda: _load())
    servers: dict[str, dict[str, str]] = field(default_factory=dict)  # settings that move figures

    def add(self, key: str, value: float) -> None:
        if key not in KINDS:
            raise KeyError(key)
        if not math.isfinite(value):
            raise ValueError(f"{key}: {value} is not a number")
        self.runs.setdefault(key, []).append(value)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def median(self, key: str) -> float | None:
        values = self.runs.get(key)
        return statistics.median(values) if values else None

    def derive(self) -> None:
        """Figures that are quotients of two others, when both were measured."""
        for key, top, bottom in (
            ("orchestrator_vs_naive", "orchestrator", "naive"),
            ("scaling_ratio", "scaling", "orchestrator"),
        ):
            a, b = self.median(top), self.median(bottom)
            if a is not None and b:
                self.runs[key] = [a / b]

    def ratios(self, key: str) -> dict[str, float]:
        found = {}
        value = self.median(key)
        for ceiling in KINDS[key].ceilings:
            bound = self.median(ceiling)
            if value is not None and bound:
                found[ceiling] = value / bound
        return found

    def as_json(self) -> dict[str, Any]:
        figures = {}
        for key, kind in KINDS.items():
            value = self.median(key)
            if value is None:
                continue
            figures[key] = {
                "label": kind.label,
                "unit": kind.unit,
                "median": value,
                "runs": self.runs[key],
                "target": kind.target.text() if kind.target else None,
                "met": kind.target.met(value) if kind.target else None,
                "ratio_to_ceiling": self.ratios(key),
            }
        finished = datetime.now(UTC)
        return {
            "started_at": self.started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_s": round((finished - self.started).total_seconds(), 1),
            "machine": {
                **machine(),
                "load_1m_at_start": self.load_at_start,
                "load_1m_at_end": _load(),
            },
            "servers": self.servers,
            "scale": self.options.scale,
            "runs": self.options.runs,
            "scenarios": list(self.options.scenarios),
            "sizes": asdict(self.options.sizes),
            "figures": figures,
            "failed": self.failed,
            "notes": self.notes,
        }


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count() or 0,
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _load() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return os.getloadavg()[0]


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def table(results: Results) -> Table:
    """The figures as a table: median, runs, target, met, ratio to its ceilings."""
    cores = os.cpu_count() or 0
    sizes = results.options.sizes
    title = (
        f"programmes bench — scale {results.options.scale}, median of up to "
        f"{results.options.runs} run(s), {cores} cores "
        f"({sizes.events:,} events, {sizes.partitions} partitions), "
        f"load {results.load_at_start:.1f} at start"
    )
    grid = Table("figure", "median", "unit", "runs", "target", "", "vs ceiling", title=title)
    for key, kind in KINDS.items():
        value = results.median(key)
        if value is None:
            continue
        runs = " ".join(_number(v) for v in results.runs[key]) if len(results.runs[key]) > 1 else ""
        mark = ""
        if kind.target:
            mark = "[green]✓[/]" if kind.target.met(value) else "[red]✗[/]"
        ratio = ", ".join(f"{r:.2g} of {CEILINGS[c]}" for c, r in results.ratios(key).items())
        grid.add_row(
            kind.label,
            _number(value),
            kind.unit,
            runs,
            kind.target.text() if kind.target else "",
            mark,
            ratio,
        )
    return grid


def servers_line(servers: dict[str, dict[str, str]]) -> str:
    """`postgresql fsync=off …; kafka …=0`: the settings the figures were taken with."""
    return "; ".join(
        f"{server} " + " ".join(f"{k}={v}" for k, v in settings.items())
        for server, settings in servers.items()
    )


def publish(results: Results, console: Console) -> Path:
    """Print the table and notes; write <output>/<timestamp>.json and latest.json."""
    results.derive()
    console.print(table(results))
    if results.servers:
        line = f"  servers: {servers_line(results.servers)}"
        console.print(line, highlight=False, soft_wrap=True)
    for note in results.notes:
        console.print(f"  · {note}", highlight=False)
    document = json.dumps(results.as_json(), indent=2, ensure_ascii=False)
    out = results.options.output
    out.mkdir(parents=True, exist_ok=True)
    stamped = out / f"{results.started.strftime('%Y%m%dT%H%M%SZ')}.json"
    stamped.write_text(document + "\n")
    (out / "latest.json").write_text(document + "\n")
    console.print(f"results: {stamped} (and {out / 'latest.json'})", highlight=False)
    return stamped
