"""The fleet's services as real processes (`programmes run NAME`), to be killed,
stopped and restarted by fault tests as an orchestrator (Kubernetes) would.

Each process runs in its own session with its JSON log in the test's directory;
only processes started here are ever signalled, by their pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.cli import PROGRAMMES
from tests.support.fleet import free_port


@dataclass
class ServiceProcess:
    """One service process, restartable; its log accumulates across restarts."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    starts: int = 0
    kills: int = 0
    crashes: list[str] = field(default_factory=list)  # exits nobody asked for
    _process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, *, ready_within: float | None = 60.0) -> None:
        """Start the process; wait until /readyz answers 200 unless `ready_within` is None."""
        assert not self.running, f"{self.name} is already running"
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            str(PROGRAMMES),
            "run",
            *self.args,
            "--port",
            str(self.port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=dict(self.env),
            start_new_session=True,
        )
        self.starts += 1
        if ready_within is not None:
            await self.ready(ready_within)

    async def ready(self, within: float = 60.0) -> None:
        """Wait until /readyz answers 200 (fails if the process exits meanwhile)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited while starting; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {within} s")
                await asyncio.sleep(0.2)

    async def kill(self) -> None:
        """SIGKILL: no draining, no goodbye to the broker or the database."""
        process = self._take()
        assert process is not None and process.returncode is None, f"{self.name} is not running"
        process.send_signal(signal.SIGKILL)
        await process.wait()
        self.kills += 1

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM (the service drains), then SIGKILL after `grace` seconds."""
        process = self._take()
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            await process.wait()

    def _take(self) -> asyncio.subprocess.Process | None:
        """Forget the process before signalling it: its exit is then not a crash."""
        process, self._process = self._process, None
        return process

    def exited_unasked(self) -> bool:
        """The process ended without being stopped or killed (recorded in `crashes`)."""
        process = self._process
        if process is None or process.returncode is None:
            return False
        self.crashes.append(f"exit {process.returncode}; log {self.log_path}")
        self._process = None
        return True

    async def close(self) -> None:
        """Kill the process if it runs (its work was checked already), close its log."""
        process = self._take()
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (across restarts)."""
        records = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def duplicates(self) -> int:
        """Messages the log says were skipped as already processed (one by one, or
        counted per batch)."""
        total = 0
        for record in self.log_records():
            if record.get("event") == "message handled" and record.get("outcome") == "duplicate":
                total += 1
            elif record.get("event") == "duplicates skipped":
                total += int(record.get("duplicates", 0))
        return total


async def supervise(processes: list[ServiceProcess], interval: float = 0.5) -> None:
    """Restart any process that exits unasked, as Kubernetes would (until cancelled)."""
    while True:
        for process in list(processes):
            if process.exited_unasked():
                await process.start(ready_within=None)
        await asyncio.sleep(interval)


def environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`base` with the service knobs fault tests use: fast polling, JSON logs."""
    env = dict(base)
    env.update(
        PROGRAMMES_DISPATCH_INTERVAL="0.1",
        # A killed dispatcher's claims are retried after this (60 s deployed).
        PROGRAMMES_DISPATCH_LEASE="5",
        PROGRAMMES_RELAY_INTERVAL="0.05",
        PROGRAMMES_LAG_INTERVAL="5",
        PROGRAMMES_LOG_FORMAT="json",
        PROGRAMMES_LOG_LEVEL="INFO",
        PROGRAMMES_DB_POOL_MAX="6",
        PYTHONUNBUFFERED="1",
        PROGRAMMES_DEBUG="1",  # a crash leaves its traceback in the log
    )
    env.update(extra)
    return env
