# aiokafka ships neither type hints nor a py.typed marker; keep its Any-typed use here.
# mypy: disable-error-code="import-untyped"
"""Ask a Kafka broker for cluster metadata: the 'is it really up' check.

An open port is not enough: the broker accepts connections a moment before it has
registered itself with the controller, and clients fail until it has.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devstack.aio import run_blocking


def metadata_ready(bootstrap: str, *, timeout_ms: int = 3000) -> bool:
    """True if the broker at ``bootstrap`` answers a metadata request listing itself."""
    with _quiet_aiokafka():
        return run_blocking(lambda: _metadata_ready(bootstrap, timeout_ms))


async def _metadata_ready(bootstrap: str, timeout_ms: int) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="programmes-devstack",
        request_timeout_ms=timeout_ms,
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers", [])) > 0
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's connection-error logging while we poll a starting broker."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
