"""Services run on uvloop unless PROGRAMMES_EVENT_LOOP asks for asyncio's own loop."""

from __future__ import annotations

import asyncio

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
