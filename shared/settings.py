"""Configuration of every service and command, read from the environment.

The names of the contract (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`,
`ASSIGNMENT_SERVICE_URL`, `PUBLIC_BASE_URL`) are used as they are; everything
else is prefixed `PROGRAMMES_`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


DEFAULT_MAX_BATCH = 2000
"""Records a consumer applies together at most, unless PROGRAMMES_MAX_BATCH says otherwise."""


class Settings(BaseSettings):
    """Connections and tuning knobs; see the README's configuration table."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(
        "postgresql://programmes_app@127.0.0.1:15432/programmes",
        validation_alias=_env("DATABASE_URL"),
        description="PostgreSQL as the services' role (no table owner, no BYPASSRLS).",
    )
    migrations_database_url: str | None = Field(
        None,
        validation_alias=_env("MIGRATIONS_DATABASE_URL"),
        description="PostgreSQL as the schema owner, for `programmes migrate`.",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    assignment_service_url: str = Field(
        "http://127.0.0.1:8090", validation_alias=_env("ASSIGNMENT_SERVICE_URL")
    )
    public_base_url: str = Field("http://127.0.0.1:8080", validation_alias=_env("PUBLIC_BASE_URL"))
    topic_prefix: str = Field(
        "",
        validation_alias=_env("PROGRAMMES_TOPIC_PREFIX"),
        description="Prepended to every topic name (isolates tests and environments).",
    )
    db_pool_min_size: int = Field(1, validation_alias=_env("PROGRAMMES_DB_POOL_MIN"))
    db_pool_max_size: int = Field(10, validation_alias=_env("PROGRAMMES_DB_POOL_MAX"))
    log_level: str = Field("INFO", validation_alias=_env("PROGRAMMES_LOG_LEVEL"))
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", validation_alias=_env("PROGRAMMES_LOG_FORMAT")
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        validation_alias=_env("PROGRAMMES_EVENT_LOOP"),
        description="The event loop of services and commands (asyncio: the standard "
        "library's, a fallback for troubleshooting).",
    )
    http_host: str = Field("127.0.0.1", validation_alias=_env("PROGRAMMES_HTTP_HOST"))
    http_port: int | None = Field(
        None,
        validation_alias=_env("PROGRAMMES_HTTP_PORT"),
        description="Port of /healthz, /readyz, /metrics (and the verification page); "
        "default per service.",
    )
    relay_interval: float = Field(
        0.2,
        validation_alias=_env("PROGRAMMES_RELAY_INTERVAL"),
        description="Seconds between outbox polls when nothing woke the relay.",
    )
    dispatch_interval: float = Field(
        0.5,
        validation_alias=_env("PROGRAMMES_DISPATCH_INTERVAL"),
        description="Seconds between polls for due assignment requests.",
    )
    dispatch_lease: float = Field(
        60.0,
        validation_alias=_env("PROGRAMMES_DISPATCH_LEASE"),
        description="Seconds an assignment request claimed by one orchestrator process is "
        "left to it before another may send it (when the first died mid-call).",
    )
    lag_interval: float = Field(
        15.0,
        validation_alias=_env("PROGRAMMES_LAG_INTERVAL"),
        description="Seconds between samples of the gauges on /metrics (consumer lag, "
        "outbox backlog, pending assignment requests).",
    )
    max_batch: int = Field(
        DEFAULT_MAX_BATCH,
        gt=0,
        validation_alias=_env("PROGRAMMES_MAX_BATCH"),
        description="Records a consumer applies together at most, and fetches ahead of its "
        "handler at most (larger: fewer round trips per event; a bad event makes its "
        "tenant's share redone one by one).",
    )
    max_event_bytes: int = Field(
        256 * 1024,
        validation_alias=_env("PROGRAMMES_MAX_EVENT_BYTES"),
        description="Larger message values are dead-lettered unread.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
