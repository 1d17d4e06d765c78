"""The live line on a terminal: rates and totals of the tunnel's traffic, redrawn about once a second.

The formatting is pure (:func:`live_line`), so it is tested without a terminal; :class:`LiveLine` only
samples the counters and redraws with ``\\r``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

INTERVAL = 1.0
"""Seconds between redraws."""
_UNITS = ("", "k", "M", "G", "T")
_CLEAR_TO_END = "\x1b[K"


@dataclass(frozen=True, slots=True)
class Counters:
    """Traffic through the tunnel so far: ``in`` is from the server to this machine."""

    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


def si(value: float, unit: str, binary: bool = False) -> str:
    """``1234567`` -> ``'1.2 Mbit/s'`` style: three significant figures at most, SI (or 1024) steps."""
    step = 1024.0 if binary else 1000.0
    index = 0
    while abs(value) >= step * 0.9995 and index < len(_UNITS) - 1:
        value /= step
        index += 1
    prefix = _UNITS[index]
    if binary and prefix:
        prefix = prefix.upper() + "i"
    if index == 0 or abs(value) >= 1000:  # whole units, and no exponent past the largest prefix
        return f"{value:.0f} {prefix}{unit}"
    return f"{value:.3g} {prefix}{unit}"


def count(value: int) -> str:
    """A packet count: ``505``, ``2.01k``, ``3.4M``."""
    return si(value, "").rstrip().replace(" ", "")


def live_line(previous: Counters, current: Counters, seconds: float) -> str:
    """E.g. ``'in 1.2 Mbit/s, out 80 kbit/s | total in 15.3 MiB / 11.2k pkts, out 1.1 MiB / 9.87k pkts'``."""
    seconds = max(seconds, 1e-9)
    rate_in = (current.bytes_in - previous.bytes_in) * 8 / seconds
    rate_out = (current.bytes_out - previous.bytes_out) * 8 / seconds
    return (
        f"in {si(rate_in, 'bit/s')}, out {si(rate_out, 'bit/s')} | total in "
        f"{si(current.bytes_in, 'B', binary=True)} / {count(current.packets_in)} pkts, out "
        f"{si(current.bytes_out, 'B', binary=True)} / {count(current.packets_out)} pkts"
    )


class LiveLine:
    """Redraws :func:`live_line` on ``stream`` every :data:`INTERVAL` until :meth:`stop`."""

    def __init__(self, sample: Callable[[], Counters], stream: TextIO) -> None:
        self.sample = sample
        self.stream = stream
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin redrawing (in the running loop)."""
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop redrawing and end the line, so what is printed next starts on a line of its own."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        previous, then = self.sample(), loop.time()
        drawn = False
        try:
            while True:
                await asyncio.sleep(INTERVAL)
                current, now = self.sample(), loop.time()
                self.stream.write(f"\r{live_line(previous, current, now - then)}{_CLEAR_TO_END}")
                self.stream.flush()
                drawn = True
                previous, then = current, now
        finally:
            if drawn:
                self.stream.write("\n")
                self.stream.flush()
