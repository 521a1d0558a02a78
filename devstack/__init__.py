"""Local development stack: a real Kafka broker and PostgreSQL server, no Docker.

Public API::

    info = up()            # idempotent; StackInfo with pids, ports and DSNs
    os.environ.update(info.env())
    status()               # StackStatus
    down(purge=False)      # stops only what up() started

``bootstrap_database`` creates the service's roles and database on any PostgreSQL
given a superuser DSN (e.g. one started by testcontainers).
"""

from devstack.bootstrap import (
    DatabaseUrls,
    RolePasswords,
    abootstrap_database,
    bootstrap_database,
)
from devstack.errors import DevStackError
from devstack.models import ComponentStatus, KafkaInfo, PostgresInfo, StackInfo, StackStatus
from devstack.stack import down, status, up

__all__ = [
    "ComponentStatus",
    "DatabaseUrls",
    "DevStackError",
    "KafkaInfo",
    "PostgresInfo",
    "RolePasswords",
    "StackInfo",
    "StackStatus",
    "abootstrap_database",
    "bootstrap_database",
    "down",
    "status",
    "up",
]
