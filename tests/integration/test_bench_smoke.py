"""The benchmark harness (`python -m bench`) runs end to end at a tiny size and
reports every figure with a sane value. Figures are never asserted against their
targets here: at this size and on a shared machine they mean nothing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import KINDS
from bench.stack import KAFKA_SETTINGS, POSTGRES_SETTINGS
from tests.support.services import Services

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "--events": 400,
    "--naive-events": 100,
    "--pg-rows": 1000,
    "--pg-single-rows": 100,
    "--partitions": 3,
    "--latency-rate": 50,
    "--latency-seconds": 3,
    "--replay-events": 400,
    "--certificates": 100,
    "--renewer-certificates": 2000,
    "--verify-tokens": 50,
    "--verify-seconds": 1,
    "--verify-connections": 4,
}


@pytest.mark.timeout(900)
def test_every_figure_is_measured(services: Services, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROGRAMMES_")},
        "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
        "DATABASE_URL": services.app_url,
        "MIGRATIONS_DATABASE_URL": services.owner_url,
        "DATABASE_ADMIN_URL": services.admin_url,
    }
    sizes = [str(part) for option in TINY.items() for part in option]
    command = [sys.executable, "-m", "bench", "--scale", "smoke", "--runs", "1"]
    result = subprocess.run(
        [*command, *sizes, "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["machine"]["cores"] >= 1
    assert document["failed"] == []
    assert set(document["figures"]) == set(KINDS)
    for key, figure in document["figures"].items():
        value = figure["median"]
        # A part of the stack may use no measurable CPU in a short run (or run elsewhere).
        assert math.isfinite(value) and (value >= 0 if key.startswith("cpu_") else value > 0), (
            key,
            value,
        )
        assert figure["runs"], key
        for ceiling, ratio in figure["ratio_to_ceiling"].items():
            assert math.isfinite(ratio) and ratio > 0, (key, ceiling, ratio)
    # The server settings that move the figures are the servers' own, printed too.
    servers = document["servers"]
    assert set(servers["postgresql"]) == set(POSTGRES_SETTINGS)
    assert set(servers["kafka"]) == set(KAFKA_SETTINGS)
    assert servers["postgresql"]["fsync"] in {"on", "off"}, servers
    assert int(servers["kafka"]["group.coordinator.append.linger.ms"]) >= -1, servers
    assert f"fsync={servers['postgresql']['fsync']}" in result.stdout
    assert "programmes bench" in result.stdout  # the table
    # The latency runs kept the harness and the machine busy, and never more than
    # every core.
    figures = document["figures"]
    cores = document["machine"]["cores"]
    assert 0 < figures["cpu_harness"]["median"] <= figures["cpu_machine"]["median"]
    assert figures["cpu_machine"]["median"] <= 100 * cores * 1.05
