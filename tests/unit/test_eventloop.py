"""Services run on uvloop unless PROGRAMMES_EVENT_LOOP asks for asyncio's own loop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvloop

from shared import eventloop
from shared.settings import Settings


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_services_run_on_uvloop_by_default() -> None:
    assert isinstance(eventloop.run(running_loop(), Settings()), uvloop.Loop)


def test_the_standard_loop_is_a_setting_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMMES_EVENT_LOOP", "asyncio")
    loop = eventloop.run(running_loop(), Settings())
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMMES_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="PROGRAMMES_EVENT_LOOP"):
        Settings()


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_a_service_heap_is_frozen_and_its_young_generation_grows() -> None:
    loaded_at_start = object()
    tracked = [loaded_at_start]  # a container: tracked by the collector
    assert gc.is_tracked(tracked)
    _, middle, oldest = gc.get_threshold()
    eventloop.settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (eventloop.YOUNG_GENERATION, middle, oldest)
    # What existed at start is no longer in any generation the collector walks.
    assert not any(tracked is o for o in gc.get_objects())
