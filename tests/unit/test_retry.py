"""Retry of transient faults (shared/retry.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import structlog

from shared.errors import ReferenceNotFound
from shared.retry import retry_transient


class Flaky:
    """Fails with `errors` in turn, then answers `done`."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.fixture
def no_cyclic_collection() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_transient_faults_are_retried_with_a_logged_backoff_until_it_works() -> None:
    operation = Flaky(ConnectionResetError("reset"), TimeoutError(), OSError("refused"))
    with structlog.testing.capture_logs() as logs:
        assert await retry_transient(operation, initial=0.001, maximum=0.002) == "done"
    assert operation.calls == 4
    retries = [e for e in logs if e["event"] == "transient fault, retrying"]
    assert [e["attempt"] for e in retries] == [1, 2, 3]
    assert [e["error_class"] for e in retries] == [
        "ConnectionResetError",
        "TimeoutError",
        "OSError",
    ]
    assert all(e["wait_s"] >= 0 for e in retries)


async def test_a_permanent_error_passes_straight_through_even_after_a_transient_one() -> None:
    first = Flaky(ReferenceNotFound("no such row"))
    with pytest.raises(ReferenceNotFound):
        await retry_transient(first)
    assert first.calls == 1

    later = Flaky(OSError("refused"), ReferenceNotFound("no such row"))
    with pytest.raises(ReferenceNotFound):
        await retry_transient(later, initial=0.001, maximum=0.002)
    assert later.calls == 2


@pytest.mark.usefixtures("no_cyclic_collection")
async def test_a_call_that_works_leaves_no_garbage_for_the_cyclic_collector() -> None:
    # The hot path: every batch group goes through here. Garbage in reference
    # cycles piles up until the collector frees it all at once, pausing the loop.
    operation = Flaky()
    for _ in range(1_000):
        await retry_transient(operation)
    assert operation.calls == 1_000
    assert gc.collect() < 100  # tenacity on every call left about 30 objects per call
