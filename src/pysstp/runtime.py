"""Process-wide settings for the long-running commands (``pysstp server`` and ``pysstp connect``)."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pysstp.errors import ConfigError

T = TypeVar("T")

LOOP_ENVIRONMENT = "PYSSTP_EVENT_LOOP"
"""The event loop of ``pysstp server`` and ``pysstp connect``: ``asyncio`` (the standard library's, the
default) or ``uvloop`` (the ``pysstp[uvloop]`` extra)."""
LOOPS = ("asyncio", "uvloop")
DEFAULT_LOOP = "asyncio"
"""Measured against uvloop in the same runs (docs/scaling.md, "Numbers"), the standard loop used the same
CPU per connect, less memory per idle session and less CPU per Gbit, so it stays the default."""


def freeze_start_up_objects() -> None:
    """Keep the cyclic garbage collector away from what start-up created.

    The modules, TLS libraries and settings loaded before the event loop starts are a few hundred
    thousand objects that live as long as the process. A full collection traverses them all, which here
    took about 20 ms: long enough for the TUN queue (500 packets) or a receiving socket to overflow at
    50 000 packets/s, so a steady UDP flow lost packets in bursts. Frozen, they are never traversed, and
    a full collection only visits what the sessions created since.
    """
    gc.collect()
    gc.freeze()


def event_loops(wanted: str = "") -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops this process can run, by name (``asyncio``, and ``uvloop`` when installed), or
    only ``wanted`` when it is one of them. uvloop is imported only when its loop is made: a process on
    the standard loop does not carry it."""
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if importlib.util.find_spec("uvloop") is not None:
        loops["uvloop"] = _new_uvloop
    return {wanted: loops[wanted]} if wanted in loops else loops


def _new_uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop to run: its name and its factory (see :data:`LOOP_ENVIRONMENT`)."""
    wanted = os.environ.get(LOOP_ENVIRONMENT, "").strip().lower() or DEFAULT_LOOP
    if wanted not in LOOPS:
        raise ConfigError(f"{LOOP_ENVIRONMENT}={wanted!r}: use one of {', '.join(LOOPS)}")
    loops = event_loops(wanted)
    if wanted not in loops:
        raise ConfigError(
            f"{LOOP_ENVIRONMENT}={wanted} but {wanted} is not installed: pip install 'pysstp[uvloop]'"
        )
    return wanted, loops[wanted]


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop 0.21.0`` or ``asyncio``: which event loop ``loop`` is, for the log."""
    if type(loop).__module__.startswith("uvloop"):
        return f"uvloop {importlib.metadata.version('uvloop')}"
    return "asyncio"


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks (the server's log names it)."""
    try:
        _name, factory = loop_factory()
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
