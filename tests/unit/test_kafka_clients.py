"""Short-lived aiokafka clients are closed whatever happens to their start.

Found by CI: the orchestrator's lag monitor, cancelled by a shutdown while its
admin client was still connecting, left that client and a never-started
consumer open; their "Unclosed AIOKafka..." warnings surfaced in whichever test
the garbage collector happened to run in.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.messaging.lag import partition_lag


def unclosed_resources() -> list[str]:
    """The ResourceWarnings raised while collecting every unreachable object now."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.fixture
async def silent_broker() -> AsyncIterator[str]:
    """A listener that accepts connections and never answers (a broker hanging)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_lag_sample_that_cannot_connect_leaves_nothing_open() -> None:
    unclosed_resources()  # whatever earlier tests left
    try:
        await partition_lag("127.0.0.1:1", "group", ["topic"])
    except KafkaConnectionError:
        pass
    else:
        pytest.fail("a lag sample against a closed port succeeded")
    assert unclosed_resources() == []


async def test_a_lag_sample_cancelled_while_connecting_leaves_nothing_open(
    silent_broker: str,
) -> None:
    unclosed_resources()
    sample = asyncio.create_task(partition_lag(silent_broker, "group", ["topic"]))
    await asyncio.sleep(0.3)  # connected, waiting for the metadata answer
    assert not sample.done()
    sample.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sample
    del sample
    assert unclosed_resources() == []
