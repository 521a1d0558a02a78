"""The verification page's failed look-up limiter."""

from __future__ import annotations

from services.certifier.verification import FailedLookupLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_failures_are_limited_per_client() -> None:
    limiter = FailedLookupLimiter(3, clock=Clock())
    for _ in range(3):
        assert await limiter.allowed("a")
        await limiter.failed("a")
    assert not await limiter.allowed("a")
    assert await limiter.allowed("b")


async def test_a_client_quiet_for_a_minute_is_let_through() -> None:
    clock = Clock()
    limiter = FailedLookupLimiter(1, clock=clock)
    await limiter.failed("a")
    assert not await limiter.allowed("a")
    clock.now += FailedLookupLimiter.WINDOW + 1
    assert await limiter.allowed("a")


async def test_quiet_clients_are_forgotten() -> None:
    clock = Clock()
    limiter = FailedLookupLimiter(30, clock=clock)
    limiter._PRUNE_AT = 3
    for client in ("a", "b", "c"):
        await limiter.failed(client)
    clock.now += FailedLookupLimiter.WINDOW + 1
    await limiter.failed("d")
    assert set(limiter._last_failure) == {"d"}
