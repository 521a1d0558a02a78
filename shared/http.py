"""The operations endpoints every service serves, and a uvicorn server that runs
inside the service's own event loop.

`/healthz` answers as long as the event loop turns (liveness); `/readyz` asks the
service whether its dependencies answer (readiness); `/metrics` is the default
Prometheus registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

Readiness = Callable[[], Awaitable[dict[str, bool]]]

log = structlog.get_logger(__name__)


def ops_routes(readiness: Readiness, *, readiness_timeout: float = 5.0) -> list[Route]:
    """`/healthz`, `/readyz` and `/metrics`, with `readiness` telling which components answer.

    A readiness check that raises or takes longer than `readiness_timeout` seconds
    counts as not ready: a probe must get an answer, never a hung connection.
    """

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        try:
            async with asyncio.timeout(readiness_timeout):
                checks = {name: bool(ok) for name, ok in (await readiness()).items()}
        except Exception:
            log.warning("readiness check failed", exc_info=True)
            checks = {"readiness": False}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        # The service runtime owns SIGTERM/SIGINT; uvicorn would otherwise replace
        # its handlers for as long as serve() runs.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class HttpServer:
    """Serves an ASGI app with uvicorn on the running event loop, started and stopped
    by the service around its own work."""

    def __init__(self, app: ASGIApp, host: str, port: int, *, stop_timeout: float = 5.0) -> None:
        self._host = host
        self._requested_port = port
        self._stop_timeout = stop_timeout
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            # The C HTTP parser: the verification page answers several times the
            # requests per CPU second of the pure-Python h11.
            http="httptools",
            # Leaves a margin inside stop_timeout for closing the listeners.
            timeout_graceful_shutdown=max(int(stop_timeout) - 1, 1),
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the requested one, or the one chosen for port 0)."""
        servers = getattr(self._server, "servers", None)
        if not self._server.started or not servers:
            raise RuntimeError("the HTTP server is not listening")
        sockets = servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; returns once the socket accepts connections, raises OSError if it cannot."""
        if self._task is not None:
            raise RuntimeError("the HTTP server was already started")
        task = asyncio.create_task(self._serve(), name=f"http:{self._requested_port}")
        listening = asyncio.create_task(self._server.listening.wait())
        try:
            await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Whoever started us gave up: leave no server running behind their back.
            task.cancel()
            raise
        finally:
            listening.cancel()
        if task.done():
            # Startup failed: surface why (re-raises the task's exception).
            task.result()
            raise RuntimeError("the HTTP server stopped during startup")
        self._task = task
        log.info("http server listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then close; bounded by `stop_timeout`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            async with asyncio.timeout(self._stop_timeout):
                await asyncio.shield(task)
        except TimeoutError:
            log.warning("http server did not stop in time; cancelling")
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:
            # uvicorn reports a failed bind with sys.exit(); inside a task that would
            # stop the whole event loop, so turn it back into the error it was.
            cause = exc.__context__
            if isinstance(cause, OSError):
                raise OSError(
                    cause.errno, f"cannot listen on {self._host}:{self._requested_port}: {cause}"
                ) from cause
            raise RuntimeError(f"the HTTP server exited during startup ({exc.code})") from exc
