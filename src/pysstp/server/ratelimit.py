"""Per-session rate limits: a token bucket each way, used as a policer (docs/scaling.md, "Rate limits").

A packet beyond the limit is dropped, not queued: SSTP is TCP inside TCP, and a queue here would only
add delay that the inner TCP reads as a slow path instead of as the loss it reacts to (see
docs/architecture.md, the data path). The bucket holds :data:`BURST_WINDOW` of the rate, so the inner
TCP's bursts pass and its rate settles just below the limit.

The bucket is pure: the caller passes the time (the event loop's clock, once per batch).
"""

from __future__ import annotations

import re
from typing import TypeVar

BURST_WINDOW = 0.2
"""Seconds of traffic at the full rate that the bucket holds: the burst a session may send at once. With
100 ms one TCP stream through a 20 Mbit/s session got only 10-12 Mbit/s (the outer connection's buffers
hold more than that burst); with 200 ms it gets the limit from 5 Mbit/s to 100 Mbit/s (docs/scaling.md)."""
MIN_BURST_PACKETS = 2
"""The burst is at least this many packets of the session's MTU, so that low rates still pass whole
packets back to back."""

Packet = TypeVar("Packet", bytes, memoryview)

_BIT_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<prefix>[kKmMgG]?)(?:bit/s|bps)?")
_PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_bit_rate(text: str) -> int:
    """Bits per second from ``text``: a number with an optional SI prefix (k, M, G: powers of 1000),
    e.g. ``10M``, ``512k``, ``1.5G`` or ``0`` (unlimited); ValueError says what is expected."""
    match = _BIT_RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a bit rate like 10M, 512k or 0 (unlimited)")
    return round(float(match["number"]) * _PREFIXES[match["prefix"].lower()])


class TokenBucket:
    """A policer for one direction of one session, in bytes.

    Tokens fill at ``rate`` bits/s up to the burst; a packet passes when the bucket holds its size, and
    takes that many tokens (:meth:`police`). Over any interval of ``t`` seconds no more than
    ``rate / 8 * t + burst`` bytes pass (the bucket starts full).
    """

    __slots__ = ("burst", "bytes_per_second", "rate", "tokens", "updated")

    def __init__(self, rate: int, mtu: int, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be more than 0 bit/s, not {rate}")
        self.rate = rate
        """The limit in bit/s."""
        self.bytes_per_second = rate / 8
        self.burst = max(self.bytes_per_second * BURST_WINDOW, MIN_BURST_PACKETS * mtu)
        """The most tokens (bytes) the bucket holds."""
        self.tokens = self.burst
        self.updated = now

    def police(self, packets: list[Packet], now: float) -> tuple[list[Packet], int]:
        """The packets of one batch that pass at ``now`` (seconds, never earlier than a time passed
        before), in order, and how many were dropped. A packet passes when the bucket holds its size,
        which it takes."""
        self._refill(now)
        tokens = self.tokens
        passed: list[Packet] = []
        keep = passed.append
        for packet in packets:
            size = len(packet)
            if tokens >= size:
                tokens -= size
                keep(packet)
        self.tokens = tokens
        return passed, len(packets) - len(passed)

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.bytes_per_second)
            self.updated = now


def session_bucket(own: int | None, server: int, mtu: int, now: float) -> TokenBucket | None:
    """The bucket for one direction of a session whose packets are at most ``mtu`` bytes: the user's
    ``own`` limit (from the user file or RADIUS) where there is one, else the ``server``'s; ``None`` when
    that is 0 (unlimited), so that the data path takes the unlimited branch."""
    rate = server if own is None else own
    return TokenBucket(rate, mtu, now) if rate > 0 else None
