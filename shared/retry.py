"""Retry of transient faults: exponential backoff with jitter, until it works or
the task is cancelled (shutdown). Permanent errors pass straight through.

The first try runs outside tenacity, which takes over at the first transient
fault. Its machinery (the retrying object, its call state, lock and closures)
makes some 30 objects in reference cycles per call, which only the cyclic
garbage collector frees. Every batch group and relay turn goes through here, so at
1,000 events/s that garbage reached about 30,000 objects every 9 s, and freeing
it paused the event loop for 35-50 ms each time: the worst cycles of the latency
runs (docs/adr/0013-garbage-collector.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from shared.errors import is_transient

T = TypeVar("T")
log = structlog.get_logger(__name__)


def _log_fault(error: BaseException | None, attempt: int, wait_s: float) -> None:
    log.warning(
        "transient fault, retrying",
        attempt=attempt,
        error_class=type(error).__name__,
        error=str(error)[:200],
        wait_s=round(wait_s, 2),
    )


def _log_retry(state: RetryCallState) -> None:
    # tenacity's attempts are the second try onwards.
    error = state.outcome.exception() if state.outcome else None
    _log_fault(error, state.attempt_number + 1, state.upcoming_sleep)


async def retry_transient(
    operation: Callable[[], Awaitable[T]], *, initial: float = 0.05, maximum: float = 5.0
) -> T:
    """Run `operation`, retrying it while it fails transiently."""
    try:
        return await operation()
    except Exception as error:
        if not is_transient(error):
            raise
        fault = error
    wait = wait_exponential_jitter(multiplier=initial, max=maximum)
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait,
        before_sleep=_log_retry,
        reraise=True,
    )
    first_wait = wait(RetryCallState(retrying, None, (), {}))
    _log_fault(fault, 1, first_wait)
    await asyncio.sleep(first_wait)
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: AsyncRetrying never stops without an outcome")
