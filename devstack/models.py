"""What ``up`` and ``status`` return."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from devstack.bootstrap import DatabaseUrls


class KafkaInfo(BaseModel):
    """The running broker."""

    model_config = ConfigDict(frozen=True)

    pid: int
    host: str
    port: int
    controller_port: int
    log_file: Path
    reused: bool  # True when ``up`` found it already running

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


class PostgresInfo(BaseModel):
    """The running PostgreSQL server."""

    model_config = ConfigDict(frozen=True)

    pid: int
    host: str
    port: int
    data_dir: Path
    log_file: Path
    reused: bool  # True when ``up`` found it already running


class StackInfo(BaseModel):
    """Connection settings of the running dev stack, as returned by ``up()``."""

    model_config = ConfigDict(frozen=True)

    state_dir: Path
    kafka: KafkaInfo
    postgres: PostgresInfo
    database: DatabaseUrls

    def env(self) -> dict[str, str]:
        """The environment variables the services and tests read."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "DATABASE_URL": self.database.app_url,
            "MIGRATIONS_DATABASE_URL": self.database.migrations_url,
            "DATABASE_ADMIN_URL": self.database.admin_url,
        }


class ComponentStatus(BaseModel):
    """One server of the stack, as seen by ``status()``."""

    model_config = ConfigDict(frozen=True)

    name: str
    running: bool
    pid: int | None
    host: str
    port: int
    detail: str  # human explanation, e.g. "not answering on its port"


class StackStatus(BaseModel):
    """The state of every server of the stack."""

    model_config = ConfigDict(frozen=True)

    state_dir: Path
    components: list[ComponentStatus]

    @property
    def running(self) -> bool:
        """True if every component is up."""
        return all(component.running for component in self.components)
