"""Fixtures of the fault tier: where a run happens, and its working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import Settings
from tests.faults.harness import Target
from tests.support.services import Services, with_database


@pytest.fixture
def shared_target(services: Services, database: str, settings: Settings) -> Target:
    """The shared stack, with this test's own database and topic prefix (its topics
    are deleted afterwards by the `settings` fixture)."""
    return Target(
        bootstrap=settings.kafka_bootstrap_servers,
        app_url=settings.database_url,
        admin_url=with_database(services.admin_url, database),
        prefix=settings.topic_prefix,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the run's process logs go (kept by pytest for a failed test)."""
    return tmp_path
