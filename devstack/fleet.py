"""The fleet's services as detached local processes (for `programmes demo`).

Each runs `programmes run NAME --port P` in its own session with its log in the
state directory; pids are recorded so that `stop_fleet` stops only these.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from devstack.errors import DevStackError
from devstack.paths import HOST, ensure_dir, state_dir
from devstack.processes import (
    process_if_ours,
    require_free_port,
    say,
    spawn_detached,
    tail,
    terminate,
    wait_until,
)


def _fleet_dir() -> Path:
    return ensure_dir(state_dir() / "fleet")


def _programmes() -> str:
    beside = Path(sys.executable).with_name("programmes")
    found = str(beside) if beside.exists() else shutil.which("programmes")
    if found is None:
        raise DevStackError("the programmes command is not installed (run make install)")
    return found


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def start_fleet(
    ports: Mapping[str, int], env: Mapping[str, str], timeout: float = 60
) -> dict[str, int]:
    """Start each service NAME on its port and wait until it is ready; returns pids."""
    stop_fleet()
    for name, port in ports.items():
        require_free_port(port, component=name, env_var="--help of programmes demo")
    pids: dict[str, int] = {}
    for name, port in ports.items():
        log = _fleet_dir() / f"{name}.log"
        pids[name] = spawn_detached(
            [_programmes(), "run", name, "--port", str(port)], log_path=log, env=env
        )
        (_fleet_dir() / "pids.json").write_text(json.dumps(pids))
    for name, port in ports.items():
        if not wait_until(lambda port=port: _ready(port), timeout=timeout):  # type: ignore[misc]
            log = _fleet_dir() / f"{name}.log"
            raise DevStackError(
                f"{name} did not become ready on port {port}; see {log}:\n{tail(log)}"
            )
        log = _fleet_dir() / f"{name}.log"
        say(f"{name}: ready on {HOST}:{port} (pid {pids[name]}, log {log})")
    return pids


def stop_fleet() -> list[str]:
    """Stop the services `start_fleet` started (SIGTERM: they drain); returns their names."""
    record = _fleet_dir() / "pids.json"
    if not record.exists():
        return []
    stopped = []
    for name, pid in json.loads(record.read_text()).items():
        process = process_if_ours(pid, marker=name)
        if process is not None:
            terminate(process, grace=30)
            stopped.append(name)
    record.unlink()
    return stopped
