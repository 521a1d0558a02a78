"""Passwords of the local PostgreSQL, generated once and kept in ``credentials.json``.

Stable across ``up`` runs so DSNs exported into a shell keep working; mode 600
because they are real (if local-only) passwords.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from devstack.bootstrap import RolePasswords
from devstack.processes import say, write_private

FILE_NAME = "credentials.json"


class Credentials(BaseModel):
    """The superuser's password and those of the service roles."""

    model_config = ConfigDict(frozen=True)

    superuser: str
    roles: RolePasswords


def load_or_create(state: Path) -> Credentials:
    """The stored credentials, or new ones written to ``<state>/credentials.json``."""
    path = state / FILE_NAME
    try:
        return Credentials.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValidationError) as exc:
        say(f"postgres: replacing unreadable {path} ({type(exc).__name__})")
    credentials = Credentials(superuser=secrets.token_urlsafe(24), roles=RolePasswords.generate())
    write_private(path, credentials.model_dump_json(indent=2) + "\n")
    return credentials
