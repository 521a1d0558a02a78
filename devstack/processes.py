"""Process and port plumbing: commands, detached servers, liveness, ports, locks.

Ownership is always decided from a pid we recorded plus the process command line
(which must mention our config or data dir), never from who holds a port: ``down``
must not kill a stranger's server.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from devstack.errors import DevStackError
from devstack.paths import HOST


def say(message: str) -> None:
    """Print a progress line to stderr (stdout is kept for results)."""
    print(message, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a text file, or '' if it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def show_tail(path: Path, lines: int = 25) -> None:
    """Print the end of a log file to stderr, to explain a failure."""
    text = tail(path, lines)
    if text:
        say(f"--- last lines of {path} ---\n{text}\n---")


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user to run a command as (used for PostgreSQL under root)."""

    name: str
    uid: int
    gid: int


def run(
    args: Sequence[str],
    *,
    what: str,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    new_session: bool = False,
) -> str:
    """Run a command to completion and return its output (stdout and stderr merged).

    Output goes through a temporary file rather than a pipe: ``pg_ctl start`` leaves
    a server behind that may inherit the pipe, and reading it would then never end.
    On failure raises DevStackError naming ``what``, after printing the output.
    """
    with tempfile.TemporaryFile() as out:
        try:
            completed = subprocess.run(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                timeout=timeout,
                check=False,
                start_new_session=new_session,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                # An empty list drops root's supplementary groups instead of leaking them.
                extra_groups=[] if run_as else None,
            )
        except FileNotFoundError:
            raise DevStackError(f"{what}: command not found: {args[0]}") from None
        except subprocess.TimeoutExpired:
            raise DevStackError(f"{what}: timed out after {timeout:.0f} s") from None
        out.seek(0)
        output = out.read().decode("utf-8", errors="replace")
    if completed.returncode != 0:
        last = "\n".join(output.strip().splitlines()[-25:])
        if last:
            say(f"--- output of {what} ---\n{last}\n---")
        raise DevStackError(f"{what} failed with exit code {completed.returncode}")
    return output


def spawn_detached(
    args: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start a long-running server in its own session, output appended to ``log_path``.

    The new session keeps it alive after the CLI exits and out of reach of a Ctrl-C
    sent to the terminal that ran ``up``. posix_spawn rather than subprocess.Popen:
    a dropped Popen of a still-running child emits a ResourceWarning, which pytest's
    filterwarnings=error would turn into a failure when a test session starts the
    stack, and these servers are meant to outlive us. ``args[0]`` must be a path.
    """
    log_flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    return os.posix_spawn(
        args[0],
        list(args),
        dict(os.environ if env is None else env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), log_flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        # Python ignores SIGPIPE and SIGXFSZ for itself; give the server the defaults.
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
    )


def process_if_ours(pid: int | None, marker: str) -> psutil.Process | None:
    """The live process ``pid`` if its command line mentions ``marker``, else None."""
    if pid is None or pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return process if any(marker in part for part in cmdline) else None


def is_alive(process: psutil.Process) -> bool:
    """True while ``process`` runs (a zombie counts as gone)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def terminate(process: psutil.Process, *, grace: float) -> bool:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. True if it stopped cleanly.

    Polls for exit instead of waiting on the pid: the server is usually not our child,
    and if the reaper (pid 1 of a container) is slow, a zombie counts as stopped.
    """
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signal.SIGTERM)
    clean = wait_until(lambda: not is_alive(process), timeout=grace)
    if not clean:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
        wait_until(lambda: not is_alive(process), timeout=10)
    # Reap it if it is our own child (up() and down() in one process, as in tests).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)
    return clean


def port_accepts(port: int, *, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    """True if we could listen on HOST:port right now.

    SO_REUSEADDR makes a socket lingering in TIME_WAIT (after ``down``) not count as
    busy, while a live listener on the port still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_holder(port: int) -> str | None:
    """'pid N (name)' of the process listening on ``port``, if psutil can tell."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            return f"pid {conn.pid} ({name})"
    return None


def require_free_port(port: int, *, component: str, env_var: str) -> None:
    """Fail with one clear line if ``port`` is taken by a process that is not ours."""
    if port_is_free(port):
        return
    holder = port_holder(port)
    by = f" by {holder}" if holder else " by another process"
    raise DevStackError(
        f"{component}: port {port} on {HOST} is already in use{by}; "
        f"stop it or set {env_var} to another port"
    )


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (serialises concurrent ``up``/``down``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``text``, created with ``mode`` from the start."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temp, mode)
    os.replace(temp, path)
