"""The lifetime of a short-lived aiokafka client (admin, consumer, producer).

aiokafka's `start()` does not clean up after itself: when it fails, or is
cancelled half-way (a service stopping while its lag monitor connects, a test's
deadline), the client keeps its sockets and warns "Unclosed ..." when it is
collected. So the close covers the start too, and a client constructed but never
started is closed as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

Client = TypeVar("Client", AIOKafkaAdminClient, AIOKafkaConsumer, AIOKafkaProducer)


@contextlib.asynccontextmanager
async def connected(client: Client) -> AsyncIterator[Client]:
    """Start `client`; close it on the way out, whatever happened (start included)."""
    try:
        await client.start()
        yield client
    finally:
        await close(client)


async def close(client: AIOKafkaAdminClient | AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Close any aiokafka client (idempotent; fine on one that never started)."""
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()
