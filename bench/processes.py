"""The services as the benchmark drives them: real `programmes` processes with the
run's database and topic prefix in their environment, their peak memory sampled.

Only processes started here are ever signalled, by their own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.stack import Connections

PROGRAMMES = str(Path(sys.executable).with_name("programmes"))
_NOT_INHERITED = ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "DATABASE_ADMIN_URL")


class ServiceFailed(RuntimeError):
    """A service exited or never became ready."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_environment(
    conns: Connections, database: str, prefix: str, log_level: str, **extra: str
) -> dict[str, str]:
    """The environment of a service (or command) on one run's database and topics."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PROGRAMMES_") and k not in _NOT_INHERITED
    }
    env.update(
        DATABASE_URL=conns.app(database),
        KAFKA_BOOTSTRAP_SERVERS=conns.kafka,
        PROGRAMMES_TOPIC_PREFIX=prefix,
        PROGRAMMES_LOG_LEVEL=log_level,
        PROGRAMMES_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@dataclass
class MemorySampler:
    """Peak resident memory (process and children) of each service, sampled."""

    interval: float = 0.2
    peaks_mb: dict[str, float] = field(default_factory=dict)
    _watched: dict[int, str] = field(default_factory=dict)

    def watch(self, name: str, pid: int) -> None:
        self._watched[pid] = name

    @property
    def services(self) -> dict[int, str]:
        """The running services watched, by pid."""
        return dict(self._watched)

    def sample(self) -> None:
        for pid, name in list(self._watched.items()):
            try:
                process = psutil.Process(pid)
                tree = [process, *process.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree)
            except psutil.Error:
                self._watched.pop(pid, None)
                continue
            self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), rss / 2**20)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)


@dataclass
class Service:
    """One `programmes run NAME` process."""

    name: str
    port: int
    log: Path
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        """Fail if the process has exited."""
        if self.process.returncode is not None:
            raise ServiceFailed(f"{self.name} exited:\n{self.tail()}")

    async def ready(self, within: float = 90.0) -> None:
        """Wait until /readyz answers 200 (fails if the process exits first)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                self.check()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise ServiceFailed(f"{self.name} not ready after {within:.0f} s:\n{self.tail()}")

    async def stop(self, grace: float = 60.0) -> None:
        """SIGTERM (the service drains), SIGKILL after `grace` seconds."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Fleet:
    """The services started for one scenario run, with where their logs go."""

    env: Mapping[str, str]
    logs: Path
    memory: MemorySampler
    services: list[Service] = field(default_factory=list)

    async def start(
        self, name: str, *, ready: bool = True, env: Mapping[str, str] | None = None
    ) -> Service:
        """Start `programmes run NAME` on a free port (with `env` added to the
        fleet's), and unless told otherwise wait until it is ready."""
        port = free_port()
        log = self.logs / f"{name}-{port}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                PROGRAMMES,
                "run",
                name,
                "--port",
                str(port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
        service = Service(name, port, log, process)
        self.services.append(service)
        self.memory.watch(name, process.pid)
        if ready:
            await service.ready()
        return service

    def check(self) -> None:
        """Fail if a service of the run has exited (a measurement would wait forever)."""
        for service in self.services:
            service.check()

    async def stop(self, service: Service) -> None:
        await service.stop()
        with contextlib.suppress(ValueError):
            self.services.remove(service)

    async def stop_all(self) -> None:
        for service in reversed(list(self.services)):
            await self.stop(service)


@contextlib.asynccontextmanager
async def fleet(env: Mapping[str, str], logs: Path, memory: MemorySampler) -> AsyncIterator[Fleet]:
    """Services started in the block are stopped when it ends, however it ends."""
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    running = Fleet(env, logs, memory)
    try:
        yield running
    finally:
        await asyncio.shield(running.stop_all())


async def command(
    env: Mapping[str, str], *args: str, memory: MemorySampler | None = None, name: str = ""
) -> tuple[float, str]:
    """Run `programmes ARGS` to completion; returns (wall seconds, stdout).
    Fails with the command's stderr when it exits non-zero."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        PROGRAMMES,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    if memory is not None:
        memory.watch(name or args[0], process.pid)
    out, err = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise ServiceFailed(f"programmes {' '.join(args)}: {err.decode()[-2000:]}")
    return elapsed, out.decode()
