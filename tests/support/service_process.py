"""One service as a real process (`programmes run NAME`), as its container runs it:
started with the test's database, broker and topic prefix, signalled by its own pid
only, its log kept in the test's directory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.settings import Settings
from tests.support.cli import PROGRAMMES, cli_environment
from tests.support.fleet import free_port


@dataclass
class ServiceProcess:
    """A running `programmes run NAME` and what the test saw of it."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    log: Path
    readiness: list[int] = field(default_factory=list)  # /readyz codes after SIGTERM

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, within: float = 60.0) -> None:
        """Wait until /readyz says ready (fails if the process exits first)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited early:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {within}s:\n{self.tail()}")

    async def terminate(self, grace: float) -> tuple[int, float]:
        """SIGTERM, then watch /readyz until the server goes away and wait for the
        exit (killed, and failed, after `grace` seconds); exit code and seconds taken."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        watcher = asyncio.create_task(self._watch_readiness())
        try:
            code = await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"{self.name} still running {grace}s after SIGTERM") from None
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return code, time.monotonic() - started

    async def _watch_readiness(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=0.5) as client:
            while True:
                try:
                    self.readiness.append((await client.get("/readyz")).status_code)
                except httpx.HTTPError:
                    self.readiness.append(0)  # not answering (any more)
                await asyncio.sleep(0.02)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def service_process(
    name: str, settings: Settings, log_dir: Path, **env: str
) -> AsyncIterator[ServiceProcess]:
    """Start `programmes run NAME` on a free port; killed at the end if still running."""
    port = free_port()
    log = log_dir / f"{name}-{port}.log"
    environment = cli_environment(
        settings,
        PROGRAMMES_HTTP_PORT=str(port),
        PROGRAMMES_DISPATCH_INTERVAL="0.1",
        PROGRAMMES_RELAY_INTERVAL="0.05",
        PROGRAMMES_LAG_INTERVAL="1",
        **env,
    )
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(PROGRAMMES),
            "run",
            name,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    running = ServiceProcess(name, process, port, log)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
