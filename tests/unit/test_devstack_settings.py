"""The settings the local stack starts its servers with (no server started here)."""

from __future__ import annotations

import pytest

from devstack import postgres


def test_postgres_trades_durability_for_speed_unless_asked_to_be_durable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(postgres.DURABLE_ENV, raising=False)
    fast = postgres.server_settings()
    assert {fast[k] for k in ("fsync", "synchronous_commit", "full_page_writes")} == {"off"}

    monkeypatch.setenv(postgres.DURABLE_ENV, "1")
    durable = postgres.server_settings()
    # PostgreSQL's own defaults (all on) apply: nothing about durability is passed.
    assert not {"fsync", "synchronous_commit", "full_page_writes"} & set(durable)
    assert durable["max_connections"] == fast["max_connections"]
