"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections on
asyncio streams, each sending the next GET as soon as the previous answer is read.

Written on bare streams rather than an HTTP client library because the client
must not be the bottleneck: it does little more than write a request and read
`Content-Length` bytes back (tens of microseconds per request). The same client
against the server's `/healthz` gives the ceiling the figure is compared with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class Load:
    """What one load run saw."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time this process spent meanwhile
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0  # answers other than 200

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def cpu_share(self) -> float:
        """Share of one core the client used: near 1, it was the bottleneck."""
        return self.cpu_seconds / self.seconds


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("the server answered without Content-Length")
    await reader.readexactly(length)
    return status


async def _connection(host: str, port: int, paths: Iterator[str], until: float, load: Load) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            request = (
                f"GET {next(paths)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: application/json\r\n\r\n"
            )
            sent = time.perf_counter()
            writer.write(request.encode())
            status = await _answer(reader)
            load.latencies_ms.append((time.perf_counter() - sent) * 1000)
            load.failures += status != 200
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def hammer(
    host: str, port: int, paths: Sequence[str], *, connections: int, seconds: float
) -> Load:
    """GET `paths` in turn over `connections` connections for `seconds`."""
    load = Load()
    cycle = itertools.cycle(paths)
    started, cpu = time.perf_counter(), time.process_time()
    until = started + seconds
    await asyncio.gather(*(_connection(host, port, cycle, until, load) for _ in range(connections)))
    load.seconds = time.perf_counter() - started
    load.cpu_seconds = time.process_time() - cpu
    return load
