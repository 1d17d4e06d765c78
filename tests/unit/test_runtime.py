"""The start-up freeze keeps the collector off long-lived objects but still frees later cycles; the event
loop is the standard one unless uvloop is asked for."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from pysstp import runtime
from pysstp.errors import ConfigError
from pysstp.runtime import (
    LOOP_ENVIRONMENT,
    event_loops,
    freeze_start_up_objects,
    loop_factory,
    loop_name,
    run_event_loop,
)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("unfrozen")
def test_frozen_objects_are_left_out_and_new_cycles_still_collected() -> None:
    freeze_start_up_objects()
    assert gc.get_freeze_count() > 0
    before = gc.get_freeze_count()
    node = _Node()
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None
    assert gc.get_freeze_count() == before


def _uvloop_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = runtime.importlib.util.find_spec
    monkeypatch.setattr(
        runtime.importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )


def test_the_standard_loop_is_the_default_even_where_uvloop_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LOOP_ENVIRONMENT, raising=False)
    assert loop_factory()[0] == "asyncio"
    monkeypatch.setenv(LOOP_ENVIRONMENT, "asyncio")
    assert loop_factory()[0] == "asyncio"
    assert list(event_loops("asyncio")) == ["asyncio"]
    assert run_event_loop(_answer()) == 42


def test_uvloop_runs_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.setenv(LOOP_ENVIRONMENT, "uvloop")
    name, factory = loop_factory()
    assert name == "uvloop"
    assert list(event_loops()) == ["asyncio", "uvloop"]
    loop = factory()
    try:
        assert loop_name(loop).startswith("uvloop ")
    finally:
        loop.close()
    assert run_event_loop(_answer()) == 42


def test_a_wrong_or_missing_loop_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENVIRONMENT, "trio")
    with pytest.raises(ConfigError, match="PYSSTP_EVENT_LOOP='trio': use one of asyncio, uvloop"):
        loop_factory()
    monkeypatch.setenv(LOOP_ENVIRONMENT, "uvloop")
    _uvloop_missing(monkeypatch)
    assert list(event_loops()) == ["asyncio"]
    coroutine = _answer()
    with pytest.raises(ConfigError, match=r"pip install 'pysstp\[uvloop\]'"):
        run_event_loop(coroutine)
    assert coroutine.cr_frame is None  # closed, not left to warn that it was never awaited


def test_the_standard_loop_is_named_asyncio() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop_name(loop) == "asyncio"
    finally:
        loop.close()


async def _answer() -> int:
    return 42
