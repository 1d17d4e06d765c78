"""In-memory conversations between an authenticator and a peer, with a fake clock (used by test_auth_*)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from pysstp.aaa.local import CredentialStore, LocalBackend
from pysstp.ppp.auth import make_authenticator, make_peer
from pysstp.ppp.auth.base import Authenticator, AuthMachine
from pysstp.ppp.auth.mschapv2 import nt_password_hash
from pysstp.ppp.auth.verification import Verification
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


def answer_questions(machine: AuthMachine, credentials: CredentialStore, now: float) -> list[AuthEvent]:
    """Take the machine's events, answering its questions at once from ``credentials`` (the local
    backend); the other events are returned."""
    backend = LocalBackend(credentials)
    results: list[AuthEvent] = []
    for _ in range(10):
        events = machine.take_events()
        if not events:
            break
        for event in events:
            if isinstance(event, Verification):
                assert isinstance(machine, Authenticator)
                machine.answer(backend.check(event).verdict, now)
            else:
                results.append(event)
    return results


@dataclass
class Conversation:
    """Moves packets between two machines until both are quiet; time moves only when asked. The server's
    questions are answered by the local backend over ``credentials``, ``answer_delay`` seconds later."""

    server: AuthMachine
    client: AuthMachine
    credentials: CredentialStore | None = None
    drop: Drop = lambda sender, index, packet: False
    answer_delay: float = 0.0
    now: float = 0.0
    questions: list[Verification] = field(default_factory=list)
    _due: list[tuple[float, Verification]] = field(default_factory=list)
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
            moved = self._answer_due()
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
            for event in self.server.take_events():
                if isinstance(event, Verification):
                    self.questions.append(event)
                    self._due.append((self.now + self.answer_delay, event))
                    moved = True
                else:
                    self.server_events.append(event)
        self.client_events += self.client.take_events()

    def _answer_due(self) -> bool:
        due = [item for item in self._due if item[0] <= self.now]
        for item in due:
            self._due.remove(item)
            assert self.credentials is not None, "the server asked, and the conversation has no credentials"
            assert isinstance(self.server, Authenticator)
            self.server.answer(LocalBackend(self.credentials).check(item[1]).verdict, self.now)
        return bool(due)

    def _deadlines(self) -> list[float]:
        deadlines = [d for d in (self.server.next_deadline(), self.client.next_deadline()) if d is not None]
        return deadlines + [due for due, _ in self._due]

    def advance(self, seconds: float) -> None:
        """Let time pass, firing every timer that falls due."""
        until = self.now + seconds
        while True:
            deadlines = self._deadlines()
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
            deadlines = self._deadlines()
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
    credentials: CredentialStore,
    *,
    name: str = "pysstp",
    **kwargs: object,
) -> Conversation:
    """An authenticator for ``method`` (seeded) against a peer (seeded) in memory, its questions answered
    by the local backend over ``credentials``."""
    server = make_authenticator(method, name=name, random_bytes=seeded_random(1))
    client = make_peer(method, user, password, random_bytes=seeded_random(2))
    return Conversation(server, client, credentials, **kwargs)  # type: ignore[arg-type]
