"""Runs the reference delivery engine as a process of its own
(`programmes run delivery-engine`, or `python -m services.delivery_engine.main`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import structlog

from services.delivery_engine.app import create_app
from shared.http import HttpServer
from shared.logging import configure_logging
from shared.settings import get_settings

log = structlog.get_logger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve(host: str = "127.0.0.1", port: int = 8090, state_file: Path | None = None) -> None:
    """Serve the engine until SIGTERM or SIGINT (returns) or cancellation (raises)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = _install_stop_handlers(loop, stop)
    server = HttpServer(create_app(state_file), host, port)
    try:
        await server.start()
        log.info(
            "delivery engine serving",
            url=f"http://{host}:{server.port}",
            state_file=str(state_file) if state_file else None,
        )
        await stop.wait()
        log.info("delivery engine stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()


def _install_stop_handlers(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event
) -> list[signal.Signals]:
    """Route SIGTERM/SIGINT to `stop` where the loop can (main thread, not Windows)."""
    installed = []
    for sig in _STOP_SIGNALS:
        # Off the main thread or on Windows the caller keeps the signals; then
        # cancelling serve() is the way to stop it.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    return installed


def main(argv: list[str] | None = None) -> None:
    """Command line of the standalone module: `--host`, `--port`, `--state FILE`."""
    parser = argparse.ArgumentParser(description="The reference delivery engine.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--state", type=Path, default=None, help="JSON-lines file of assignments")
    args = parser.parse_args(argv)
    configure_logging(get_settings())
    asyncio.run(serve(args.host, args.port, args.state))


if __name__ == "__main__":
    main()
