"""In-memory conversations between an authenticator and a peer, with a fake clock (used by test_auth_*)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from pysstp.ppp.auth.base import AuthMachine, make_authenticator, make_peer
from pysstp.ppp.auth.mschapv2 import nt_password_hash
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Authenticated, AuthenticationFailed, AuthEvent

SERVER = "server"
CLIENT = "client"

Drop = Callable[[str, int, bytes], bool]
"""(sender, index of that sender's packet, packet) -> True to lose the packet on the way."""


def seeded_random(seed: int) -> Callable[[int], bytes]:
    """Deterministic random bytes, so conversations are reproducible."""
    rng = random.Random(seed)
    return rng.randbytes


def fixed_bytes(*chunks: bytes) -> Callable[[int], bytes]:
    """Random bytes that hand out the given chunks in order, each of exactly the length asked for."""
    queue = list(chunks)

    def take(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n, f"asked for {n} bytes, next fixed chunk has {len(chunk)}"
        return chunk

    return take


@dataclass
class Conversation:
    """Moves packets between two machines until both are quiet; time moves only when asked."""

    server: AuthMachine
    client: AuthMachine
    drop: Drop = lambda sender, index, packet: False
    now: float = 0.0
    transcript: list[tuple[str, bytes]] = field(default_factory=list)
    lost: list[tuple[str, bytes]] = field(default_factory=list)
    server_events: list[AuthEvent] = field(default_factory=list)
    client_events: list[AuthEvent] = field(default_factory=list)
    _sent: dict[str, int] = field(default_factory=lambda: {SERVER: 0, CLIENT: 0})

    def start(self) -> Conversation:
        self.server.start(self.now)
        self.client.start(self.now)
        self.pump()
        return self

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for sender, source, target in (
                (SERVER, self.server, self.client),
                (CLIENT, self.client, self.server),
            ):
                for protocol, packet in source.take_outgoing():
                    moved = True
                    assert protocol == target.protocol
                    index = self._sent[sender]
                    self._sent[sender] += 1
                    if self.drop(sender, index, packet):
                        self.lost.append((sender, packet))
                        continue
                    self.transcript.append((sender, packet))
                    target.receive(packet, self.now)
        self.server_events += self.server.take_events()
        self.client_events += self.client.take_events()

    def advance(self, seconds: float) -> None:
        """Let time pass, firing every timer that falls due."""
        until = self.now + seconds
        while True:
            deadlines = [
                d for d in (self.server.next_deadline(), self.client.next_deadline()) if d is not None
            ]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self.server.handle_timer(self.now)
            self.client.handle_timer(self.now)
            self.pump()
        self.now = until

    def run(self, limit: float = 120.0) -> Conversation:
        """Start, then let time pass until both ends decided or ``limit`` seconds passed."""
        self.start()
        while not (self.server.finished and self.client.finished) and self.now < limit:
            deadlines = [
                d for d in (self.server.next_deadline(), self.client.next_deadline()) if d is not None
            ]
            if not deadlines:
                break
            self.advance(max(0.0, min(deadlines) - self.now))
        return self

    def sent_by(self, sender: str) -> list[bytes]:
        return [packet for who, packet in self.transcript if who == sender]

    @property
    def server_result(self) -> AuthEvent:
        assert len(self.server_events) == 1, self.server_events
        return self.server_events[0]

    @property
    def client_result(self) -> AuthEvent:
        assert len(self.client_events) == 1, self.client_events
        return self.client_events[0]

    def succeeded(self) -> tuple[Authenticated, Authenticated]:
        server, client = self.server_result, self.client_result
        assert isinstance(server, Authenticated), server
        assert isinstance(client, Authenticated), client
        return server, client

    def failed(self) -> tuple[AuthenticationFailed, AuthenticationFailed]:
        server, client = self.server_result, self.client_result
        assert isinstance(server, AuthenticationFailed), server
        assert isinstance(client, AuthenticationFailed), client
        return server, client


def drop_nth(sender: str, *indexes: int) -> Drop:
    """Lose the given packets (0-based, counted per sender, retransmissions included)."""
    wanted = set(indexes)
    return lambda who, index, packet: who == sender and index in wanted


def feed_garbage(machine: AuthMachine, packets: list[bytes]) -> None:
    """Every packet goes in; nothing may come out as an exception, and timers still work."""
    for now, packet in enumerate(packets):
        machine.receive(packet, float(now))
        machine.take_outgoing()
        machine.take_events()
    deadline = machine.next_deadline()
    if deadline is not None:
        machine.handle_timer(deadline)


def framed_packets(codes: range = range(0, 8), max_body: int = 80) -> st.SearchStrategy[bytes]:
    """Packets with a believable Code/Identifier/Length header and random contents, so fuzzing goes deep."""

    def build(code: int, identifier: int, body: bytes, trailer: bytes) -> bytes:
        return bytes([code, identifier]) + (4 + len(body)).to_bytes(2, "big") + body + trailer

    return st.builds(
        build,
        st.sampled_from(list(codes)),
        st.integers(0, 255),
        st.binary(max_size=max_body),
        st.binary(max_size=3),
    )


def any_packets() -> st.SearchStrategy[list[bytes]]:
    """A mix of raw garbage and well-framed packets."""
    return st.lists(st.one_of(st.binary(max_size=60), framed_packets()), max_size=15)


class HashOnly:
    """A store that keeps NT hashes only (alice/alicepw), like a real server's user database."""

    def nt_hash(self, user: str) -> bytes | None:
        return nt_password_hash("alicepw") if user == "alice" else None

    def password(self, user: str) -> str | None:
        return None


def method_conversation(
    method: AuthMethod,
    user: str,
    password: str,
    credentials: object,
    *,
    name: str = "pysstp",
    **kwargs: object,
) -> Conversation:
    """An authenticator for ``method`` (seeded) against a peer (seeded) in memory."""
    server = make_authenticator(method, credentials, name=name, random_bytes=seeded_random(1))  # type: ignore[arg-type]
    client = make_peer(method, user, password, random_bytes=seeded_random(2))
    return Conversation(server, client, **kwargs)  # type: ignore[arg-type]
