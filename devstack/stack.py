"""``up``, ``down`` and ``status`` of the whole dev stack."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from devstack import kafka, postgres
from devstack.bootstrap import DatabaseUrls, bootstrap_database
from devstack.credentials import FILE_NAME, Credentials, load_or_create
from devstack.errors import DevStackError
from devstack.models import ComponentStatus, KafkaInfo, PostgresInfo, StackInfo, StackStatus
from devstack.paths import HOST, Ports, ensure_dir, state_dir
from devstack.processes import file_lock, port_accepts, say

_LOCK_FILE = ".lock"
# Everything ``up`` creates in the state dir (what ``down --purge`` deletes).
_STATE_ENTRIES = ("kafka", "postgres", "pginstall", "pginstall.partial", FILE_NAME, _LOCK_FILE)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Unexpected file-system errors (permissions, full disk) become DevStackError."""
    try:
        yield
    except OSError as exc:
        raise DevStackError(str(exc)) from exc


def up() -> StackInfo:
    """Start Kafka and PostgreSQL if they are not running yet; return how to reach them.

    Idempotent: servers of ours that already run are reused (same pids). Fails with
    DevStackError if a port is held by some other process.
    """
    with _one_line_errors():
        state = ensure_dir(state_dir())
        ports = Ports.from_env()
        with file_lock(state / _LOCK_FILE):
            return _up_locked(state, ports)


def _up_locked(state: Path, ports: Ports) -> StackInfo:
    kafka_paths, pg_paths = kafka.paths_for(state), postgres.paths_for(state)
    broker = kafka.check_reusable(kafka_paths, ports)
    server = postgres.check_reusable(pg_paths, ports)
    # Check every port before starting anything, so a clash leaves nothing half-up.
    if broker is None:
        kafka.require_ports(ports)
    if server is None:
        postgres.require_port(ports)
    credentials = load_or_create(state)
    if broker is None:
        broker = kafka.start(kafka_paths, ports)  # boots while PostgreSQL starts
    if server is None:
        server = postgres.start(state, pg_paths, ports, credentials.superuser)
    database = _bootstrap(pg_paths, server.port, credentials)
    kafka.wait_ready(kafka_paths, broker)
    for name, reused, pid in (
        ("kafka", broker.reused, broker.pid),
        ("postgres", server.reused, server.pid),
    ):
        if reused:
            say(f"{name}: already running (pid {pid})")
    return StackInfo(
        state_dir=state,
        kafka=KafkaInfo(
            pid=broker.pid,
            host=HOST,
            port=broker.port,
            controller_port=ports.kafka_controller,
            log_file=kafka_paths.log,
            reused=broker.reused,
        ),
        postgres=PostgresInfo(
            pid=server.pid,
            host=HOST,
            port=server.port,
            data_dir=pg_paths.data,
            log_file=pg_paths.log,
            reused=server.reused,
        ),
        database=database,
    )


def _bootstrap(
    pg_paths: postgres.PostgresPaths, port: int, credentials: Credentials
) -> DatabaseUrls:
    postgres.set_superuser_password(pg_paths, port, credentials.superuser)
    admin_dsn = f"postgresql://{postgres.SUPERUSER}:{credentials.superuser}@{HOST}:{port}/postgres"
    return bootstrap_database(admin_dsn, passwords=credentials.roles)


def down(*, purge: bool = False) -> None:
    """Stop the servers ``up`` started (never anything else); ``purge`` also deletes
    the state dir (data, logs, credentials), but never the download cache."""
    state = state_dir()
    if not state.exists():
        say(f"nothing to stop: {state} does not exist")
        return
    with _one_line_errors(), file_lock(state / _LOCK_FILE):
        kafka.stop(kafka.paths_for(state))
        postgres.stop(state, postgres.paths_for(state))
        if purge:
            _purge(state)


def _purge(state: Path) -> None:
    """Delete what the stack put in ``state``, then ``state`` itself if left empty.

    Entry by entry rather than rmtree(state): a mistyped PROGRAMMES_DEV_DIR must not
    wipe an unrelated directory.
    """
    say(f"purging {state}")
    for name in _STATE_ENTRIES:
        entry = state / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        state.rmdir()  # fails, harmlessly, if something else lives there


def status() -> StackStatus:
    """Whether each server is running, with its pid and port."""
    state = state_dir()
    ports = Ports.from_env()
    with _one_line_errors():
        components = [_kafka_status(state, ports), _postgres_status(state, ports)]
    return StackStatus(state_dir=state, components=components)


def _kafka_status(state: Path, ports: Ports) -> ComponentStatus:
    running = kafka.find_running(kafka.paths_for(state))
    if running is None:
        return ComponentStatus(
            name="kafka", running=False, pid=None, host=HOST, port=ports.kafka, detail="stopped"
        )
    process, record = running
    answering = port_accepts(record.port)
    return ComponentStatus(
        name="kafka",
        running=answering,
        pid=process.pid,
        host=HOST,
        port=record.port,
        detail="running" if answering else "process alive but not answering on its port",
    )


def _postgres_status(state: Path, ports: Ports) -> ComponentStatus:
    server = postgres.find_running(postgres.paths_for(state))
    if server is None:
        return ComponentStatus(
            name="postgres",
            running=False,
            pid=None,
            host=HOST,
            port=ports.postgres,
            detail="stopped",
        )
    answering = port_accepts(server.port)
    return ComponentStatus(
        name="postgres",
        running=answering,
        pid=server.pid,
        host=HOST,
        port=server.port,
        detail="running" if answering else "process alive but not answering on its port",
    )
