"""Randomness for the sans-I/O machines: injected, so tests and replays can fix it."""

from __future__ import annotations

from collections.abc import Callable

RandomBytes = Callable[[int], bytes]
"""``random_bytes(n)`` returns ``n`` random bytes; ``os.urandom`` by default everywhere."""
