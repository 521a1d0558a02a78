"""The benchmark's CPU accounting: readings of every process, turned into shares."""

from __future__ import annotations

import os

import pytest

from bench.cpu import PARTS, CpuClock, shares


def test_shares_are_each_parts_cpu_time_over_the_window() -> None:
    before = CpuClock(
        at=100.0,
        machine=50.0,
        processes={
            (10, 1.0): ("orchestrator", 4.0),
            (11, 1.0): ("postgresql", 2.0),
            (12, 1.0): ("postgresql", 1.0),
            (13, 1.0): ("kafka", 9.0),  # exits before the second reading: lost
            (14, 1.0): ("other", 3.0),  # its pid is reused by another process
        },
    )
    after = CpuClock(
        at=102.0,
        machine=53.0,
        processes={
            (10, 1.0): ("orchestrator", 5.0),
            (11, 1.0): ("postgresql", 2.5),
            (12, 1.0): ("postgresql", 1.5),
            (15, 101.0): ("postgresql", 0.2),  # a backend started in the window
            (14, 101.5): ("other", 0.1),
        },
    )
    found = shares(before, after)
    assert found == pytest.approx(
        {
            "orchestrator": 50.0,
            "certifier": 0.0,
            "postgresql": 60.0,
            "kafka": 0.0,
            "harness": 0.0,
            "other": 5.0,
            "machine": 150.0,
        }
    )


def test_a_reading_of_this_machine_labels_the_harness_and_the_watched_services() -> None:
    clock = CpuClock.read({os.getppid(): "orchestrator"})
    parts = {part for part, _ in clock.processes.values()}
    assert parts <= set(PARTS)
    labelled = {pid: part for (pid, _), (part, _) in clock.processes.items()}
    assert labelled[os.getpid()] == "harness"
    assert labelled[os.getppid()] == "orchestrator"
    later = CpuClock.read({})
    assert shares(clock, later)["machine"] >= 0


def test_readings_out_of_order_are_refused() -> None:
    clock = CpuClock(at=5.0, machine=0.0, processes={})
    with pytest.raises(ValueError, match="after"):
        shares(clock, clock)
