"""The ops endpoints and the embedded uvicorn server, over a real socket."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from shared.http import HttpServer, ops_routes


class FakeReadiness:
    """Readiness whose answer the test sets."""

    def __init__(self) -> None:
        self.checks: dict[str, bool] = {"database": True, "broker": True}
        self.error: Exception | None = None
        self.delay = 0.0

    async def __call__(self) -> dict[str, bool]:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return dict(self.checks)


@pytest.fixture
def readiness() -> FakeReadiness:
    return FakeReadiness()


@pytest.fixture
async def server(readiness: FakeReadiness) -> AsyncIterator[HttpServer]:
    app = Starlette(routes=ops_routes(readiness, readiness_timeout=0.5))
    http = HttpServer(app, "127.0.0.1", 0)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


@pytest.fixture
async def client(server: HttpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        yield http


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_readyz_is_ready_when_every_check_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


async def test_readyz_is_not_ready_when_one_check_fails(
    client: httpx.AsyncClient, readiness: FakeReadiness
) -> None:
    readiness.checks["broker"] = False
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": True, "broker": False},
    }


async def test_readyz_is_not_ready_when_the_check_raises(
    client: httpx.AsyncClient, readiness: FakeReadiness
) -> None:
    readiness.error = ConnectionRefusedError("database down")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    # The server survived: the next probe is answered.
    readiness.error = None
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_not_ready_when_the_check_hangs(
    client: httpx.AsyncClient, readiness: FakeReadiness
) -> None:
    readiness.delay = 5.0
    response = await client.get("/readyz")
    assert response.status_code == 503


async def test_metrics_serves_the_default_registry(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "python_info" in response.text


async def test_stop_closes_the_port(readiness: FakeReadiness) -> None:
    http = HttpServer(Starlette(routes=ops_routes(readiness)), "127.0.0.1", 0)
    await http.start()
    port = http.port
    async with httpx.AsyncClient() as client:
        # A kept-alive connection must not hold stop() up.
        assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        await asyncio.wait_for(http.stop(), timeout=5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    await http.stop()  # stopping twice is harmless


async def test_the_server_leaves_signal_handlers_alone(readiness: FakeReadiness) -> None:
    before = signal.getsignal(signal.SIGTERM)
    http = HttpServer(Starlette(routes=ops_routes(readiness)), "127.0.0.1", 0)
    await http.start()
    try:
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        await http.stop()
    assert signal.getsignal(signal.SIGTERM) is before


async def test_start_raises_when_the_port_is_taken(server: HttpServer) -> None:
    taken = HttpServer(Starlette(routes=[]), "127.0.0.1", server.port)
    with pytest.raises(OSError, match="cannot listen"):
        await taken.start()
    await taken.stop()
