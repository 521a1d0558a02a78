"""Where the cores went during a measurement: CPU time of each part of the stack.

Kafka, PostgreSQL, the services and this harness share one machine, so a latency
figure means little without knowing how busy the cores were. `CpuClock.read`
notes the CPU seconds every process on the machine has used so far, labelled by
part (a service started by the harness, with its children; the broker; the
database server; the harness itself; anything else); `shares` turns two readings
into percentages of one core over the window between them, and adds the whole
machine's busy time. psutil reads /proc: nothing is signalled or attached to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

PARTS = ("orchestrator", "certifier", "postgresql", "kafka", "harness", "other")
"""The parts reported; the services the harness starts besides these count as other."""


def _part(process: psutil.Process, services: Mapping[int, str]) -> str:
    if process.pid == os.getpid():
        return "harness"
    if process.pid in services:
        return services[process.pid] if services[process.pid] in PARTS else "other"
    if process.name() == "postgres":
        return "postgresql"
    if "kafka.Kafka" in process.cmdline():
        return "kafka"
    return "other"


def _with_children(services: Mapping[int, str]) -> dict[int, str]:
    """The services' pids and their descendants', with the service's name."""
    found = dict(services)
    for pid, name in services.items():
        try:
            for child in psutil.Process(pid).children(recursive=True):
                found[child.pid] = name
        except psutil.Error:
            continue
    return found


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds used so far by each process (keyed by pid and start time, so
    a reused pid is a new process) and busy seconds of the whole machine."""

    at: float
    machine: float
    processes: dict[tuple[int, float], tuple[str, float]]

    @classmethod
    def read(cls, services: Mapping[int, str]) -> CpuClock:
        """Read every process's CPU time (blocking: about a millisecond per
        process; call it in a thread from the event loop)."""
        labelled = _with_children(services)
        processes = {}
        for process in psutil.process_iter():
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                    processes[key] = (_part(process, labelled), times.user + times.system)
            except psutil.Error:  # exited meanwhile, or not ours to read
                continue
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return cls(time.monotonic(), busy, processes)


def shares(before: CpuClock, after: CpuClock) -> dict[str, float]:
    """Each part's CPU time between two readings as % of one core (a process that
    started in between counts from zero; one that exited is lost), and the whole
    machine's as `machine` (100 per core when every core was busy)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        raise ValueError("the second reading must come after the first")
    used = dict.fromkeys(PARTS, 0.0)
    for key, (part, seconds) in after.processes.items():
        used[part] += seconds - before.processes.get(key, (part, 0.0))[1]
    found = {part: 100 * max(seconds, 0.0) / elapsed for part, seconds in used.items()}
    found["machine"] = 100 * (after.machine - before.machine) / elapsed
    return found
