"""In-memory wiring for the PPP automaton tests: two machines, a fake clock, an optional packet filter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pysstp.ppp.events import PppEvent
from pysstp.ppp.fsm import OptionFsm
from pysstp.ppp.packet import ControlPacket

Drop = Callable[[str, ControlPacket], bool]
"""Called with the direction ("a>b" or "b>a") and each packet; True drops the packet."""

_MAX_ROUNDS = 1000


def seeded_random(seed: int) -> Callable[[int], bytes]:
    """Deterministic random bytes, so a failing negotiation can be replayed."""
    return random.Random(seed).randbytes


def fixed_random(data: bytes) -> Callable[[int], bytes]:
    """Random bytes that are always the first ``n`` bytes of ``data`` (to reproduce a trace)."""
    return lambda n: data[:n]


def packet(hex_bytes: str) -> bytes:
    """Bytes from a hex dump with spaces, as protocol traces print them."""
    return bytes.fromhex(hex_bytes)


def sent(machine: OptionFsm) -> list[bytes]:
    """Packets the machine queued, after checking they all carry its protocol."""
    outgoing = machine.take_outgoing()
    assert all(protocol == machine.protocol for protocol, _ in outgoing)
    return [data for _, data in outgoing]


@dataclass
class Wire:
    """Two machines of the same protocol connected back to back, with a fake clock."""

    a: OptionFsm
    b: OptionFsm
    now: float = 0.0
    drop: Drop | None = None
    log: list[tuple[str, ControlPacket]] = field(default_factory=list)
    events_a: list[PppEvent] = field(default_factory=list)
    events_b: list[PppEvent] = field(default_factory=list)

    def start(self) -> None:
        """Open both machines and bring their lower layers up."""
        for machine in (self.a, self.b):
            machine.open(self.now)
            machine.up(self.now)
        self.pump()

    def pump(self) -> None:
        """Deliver packets until neither side has anything to send."""
        for _ in range(_MAX_ROUNDS):
            moved = False
            for direction, source, target in (("a>b", self.a, self.b), ("b>a", self.b, self.a)):
                for data in sent(source):
                    moved = True
                    decoded = ControlPacket.decode(data)
                    self.log.append((direction, decoded))
                    if self.drop is None or not self.drop(direction, decoded):
                        target.receive(data, self.now)
            self.events_a += self.a.take_events()
            self.events_b += self.b.take_events()
            if not moved:
                return
        raise AssertionError("the machines never stopped talking")

    def run(self, until: float) -> None:
        """Deliver packets and fire timers until ``until`` (fake time)."""
        self.pump()
        while True:
            deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = min(deadlines)
            self.a.handle_timer(self.now)
            self.b.handle_timer(self.now)
            self.pump()
        self.now = until

    def codes(self, direction: str) -> list[int]:
        """Codes of the packets sent in one direction, in order."""
        return [p.code for d, p in self.log if d == direction]
