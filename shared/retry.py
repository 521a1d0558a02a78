"""Retry of transient faults: exponential backoff with jitter, until it works or
the task is cancelled (shutdown). Permanent errors pass straight through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from shared.errors import is_transient

T = TypeVar("T")
log = structlog.get_logger(__name__)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "transient fault, retrying",
        attempt=state.attempt_number,
        error_class=type(error).__name__,
        error=str(error)[:200],
        wait_s=round(state.upcoming_sleep, 2),
    )


async def retry_transient(
    operation: Callable[[], Awaitable[T]], *, initial: float = 0.05, maximum: float = 5.0
) -> T:
    """Run `operation`, retrying it while it fails transiently."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum),
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            return await operation()
    raise AssertionError("unreachable: AsyncRetrying never stops without an outcome")
