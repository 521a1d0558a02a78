"""Where the dev stack keeps its state and cache, and which ports it uses.

Everything is resolved from the environment on each call, so tests can point the
stack elsewhere with ``PROGRAMMES_DEV_DIR`` / ``PROGRAMMES_CACHE_DIR`` and the port
variables without touching code.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import DevStackError

HOST = "127.0.0.1"

STATE_DIR_ENV = "PROGRAMMES_DEV_DIR"
CACHE_DIR_ENV = "PROGRAMMES_CACHE_DIR"
KAFKA_PORT_ENV = "PROGRAMMES_KAFKA_PORT"
KAFKA_CONTROLLER_PORT_ENV = "PROGRAMMES_KAFKA_CONTROLLER_PORT"
PG_PORT_ENV = "PROGRAMMES_PG_PORT"

# Non-default ports so the stack never collides with a system PostgreSQL or Kafka.
DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_PG_PORT = 15432

# When running as root, PostgreSQL runs as this unprivileged system user and must be
# able to reach its data dir, so the state cannot live under /root (mode 700).
ROOT_STATE_DIR = Path("/var/lib/programmes-dev")


def is_root() -> bool:
    """True when the current process runs with effective uid 0."""
    return os.geteuid() == 0


def state_dir() -> Path:
    """The state directory: data, logs, pid files and credentials of the dev stack."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    if is_root():
        return ROOT_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return (base / "programmes" / "dev").absolute()


def cache_dir() -> Path:
    """The download cache (Kafka jars); survives ``down --purge``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "programmes").absolute()


def _port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise DevStackError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise DevStackError(f"{name}={port} is outside the port range 1-65535")
    return port


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the stack, each overridable through its env var."""

    kafka: int
    kafka_controller: int
    postgres: int

    @classmethod
    def from_env(cls) -> Ports:
        """Read the ports from the environment, falling back to the defaults."""
        ports = cls(
            kafka=_port_from_env(KAFKA_PORT_ENV, DEFAULT_KAFKA_PORT),
            kafka_controller=_port_from_env(
                KAFKA_CONTROLLER_PORT_ENV, DEFAULT_KAFKA_CONTROLLER_PORT
            ),
            postgres=_port_from_env(PG_PORT_ENV, DEFAULT_PG_PORT),
        )
        if len({ports.kafka, ports.kafka_controller, ports.postgres}) != 3:
            raise DevStackError(
                f"ports must differ: {KAFKA_PORT_ENV}={ports.kafka}, "
                f"{KAFKA_CONTROLLER_PORT_ENV}={ports.kafka_controller}, "
                f"{PG_PORT_ENV}={ports.postgres}"
            )
        return ports


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) and give it ``mode``, whatever the umask."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    except OSError as exc:
        raise DevStackError(f"cannot create {path}: {exc.strerror}") from None
    return path
