"""In-memory wiring for link tests: a client link, a server (link or scripted), a fake clock."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pysstp.aaa.local import CredentialStore, LocalBackend, StaticCredentials
from pysstp.link import (
    Authenticated,
    CallEvent,
    ClientConfig,
    ClientLink,
    LinkDown,
    LinkUp,
    NetworkForUser,
    ServerConfig,
    ServerLink,
    ServerNetwork,
    Verdict,
    Verification,
)
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.constants import AuthMethod
from pysstp.sstp.binding import certificate_hashes

CERT_DER = b"0\x82 pretend this is the DER of the server's leaf certificate"
POOL = [IPv4Address("10.0.0.5"), IPv4Address("10.0.0.6")]
SERVER_ADDRESS = IPv4Address("10.0.0.1")
DNS = (IPv4Address("10.0.0.1"),)

Filter = Callable[[bytes], bytes]
Answerer = Callable[[Verification], Verdict]
"""Answers a server link's question (the local backend's check, or a test's own)."""


def local_answers(credentials: CredentialStore) -> Answerer:
    """The local backend over ``credentials`` (with the user file's entries when it is one)."""
    users = getattr(credentials, "entry", None)
    backend = LocalBackend(credentials, users)
    return lambda question: backend.check(question).verdict


def seeded_random(seed: int) -> Callable[[int], bytes]:
    """Deterministic random bytes, so a failing conversation can be replayed."""
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def ipv4_packet(src: IPv4Address, dst: IPv4Address, payload: bytes) -> bytes:
    """A minimal IPv4/UDP-ish packet; the links never look inside beyond the version nibble."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0, src.packed, dst.packed)
    return header + payload


def pool_network_for_user() -> NetworkForUser:
    """Addresses for users from a two-address pool, one per user."""
    pool = list(POOL)
    assigned: dict[str, IPv4Address] = {}

    def network_for_user(user: str) -> ServerNetwork | str:
        if user not in assigned:
            if not pool:
                return f"no IPv4 address left in the pool for user {user!r}"
            assigned[user] = pool.pop(0)
        return ServerNetwork(SERVER_ADDRESS, assigned[user], DNS)

    return network_for_user


def server_config(**overrides: object) -> ServerConfig:
    """A server link configuration for CERT_DER."""
    settings: dict[str, object] = {"certificate_hashes": certificate_hashes(CERT_DER)}
    settings.update(overrides)
    return ServerConfig(**settings)  # type: ignore[arg-type]


def client_config(**overrides: object) -> ClientConfig:
    """A client link configuration for alice."""
    settings: dict[str, object] = {"host": "vpn.example.test", "username": "alice", "password": "alicepw"}
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


@dataclass
class Conversation:
    """A client link and a server link exchanging bytes in memory under a fake clock. The server's
    questions are answered by ``answerer`` (the local backend), ``answer_delay`` seconds after they are
    asked."""

    client: ClientLink
    server: ServerLink
    answerer: Answerer
    answer_delay: float = 0.0
    now: float = 1000.0
    to_server: Filter | None = None
    to_client: Filter | None = None
    client_events: list[CallEvent] = field(default_factory=list)
    server_events: list[CallEvent] = field(default_factory=list)
    client_ip: list[bytes] = field(default_factory=list)
    server_ip: list[bytes] = field(default_factory=list)
    cut: bool = False
    questions: list[Verification] = field(default_factory=list)
    _due: list[tuple[float, Verification]] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        client: ClientConfig | None = None,
        server: ServerConfig | None = None,
        seed: int = 1,
        *,
        credentials: CredentialStore | None = None,
        network_for_user: NetworkForUser | None = None,
        answerer: Answerer | None = None,
        answer_delay: float = 0.0,
    ) -> Conversation:
        """Build both links; TLS is 'up' and the client has seen the server certificate. The server
        knows alice/alicepw and bob/bobpw (the local backend answers at once) and gives addresses from a
        two-address pool, unless told otherwise."""
        client_link = ClientLink(client or client_config(), random_bytes=seeded_random(seed))
        server_link = ServerLink(
            server or server_config(),
            network_for_user=network_for_user or pool_network_for_user(),
            random_bytes=seeded_random(seed + 1000),
        )
        client_link.set_server_certificate(CERT_DER)
        if answerer is None:
            answerer = local_answers(credentials or StaticCredentials({"alice": "alicepw", "bob": "bobpw"}))
        return cls(client_link, server_link, answerer, answer_delay)

    def start(self) -> None:
        """The client sends its HTTP request."""
        self.client.start(self.now)
        self.pump()

    def pump(self) -> None:
        """Deliver bytes both ways until nothing moves."""
        for _ in range(1000):
            self._collect()
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if self.cut:
                to_server = to_client = b""
            if self.to_server is not None and to_server:
                to_server = self.to_server(to_server)
            if self.to_client is not None and to_client:
                to_client = self.to_client(to_client)
            if not to_server and not to_client:
                return
            if to_server and not self.server.is_closed:
                self.server.receive_data(to_server, self.now)
            if to_client and not self.client.is_closed:
                self.client.receive_data(to_client, self.now)
        raise AssertionError("conversation did not settle")

    def advance(self, seconds: float) -> None:
        """Let time pass, running every timer that comes due on the way."""
        end = self.now + seconds
        while True:
            deadlines = [
                d for d in (self.client.next_deadline(), self.server.next_deadline()) if d is not None
            ]
            deadlines += [due for due, _ in self._due]
            due = min(deadlines, default=None)
            if due is None or due > end:
                break
            self.now = max(self.now, due)
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.pump()
        self.now = end
        self.pump()

    def _collect(self) -> None:
        """Gather both sides' output; answer the server's questions that are due."""
        self.client_events.extend(self.client.take_events())
        for event in self.server.take_events():
            self.server_events.append(event)
            if isinstance(event, Verification):
                self.questions.append(event)
                self._due.append((self.now + self.answer_delay, event))
        for item in [item for item in self._due if item[0] <= self.now]:
            self._due.remove(item)
            self.server.answer(self.now, item[1], self.answerer(item[1]))
            self.server_events.extend(self.server.take_events())
        self.client_ip.extend(self.client.take_ip_packets())
        self.server_ip.extend(self.server.take_ip_packets())

    def events(self, side: str, kind: type) -> list[CallEvent]:
        """Events of one type seen by 'client' or 'server'."""
        self._collect()
        pool = self.client_events if side == "client" else self.server_events
        return [e for e in pool if isinstance(e, kind)]

    def assert_up_with_binding(self, user: str, method: AuthMethod) -> None:
        """Start the call and check that both sides came up, the server's with ``user`` logged in by
        ``method``, and that both hold the same key for the crypto binding (an HLAK of real keys, not
        the zeros of MS-SSTP 3.2.5.2.1 for methods without them)."""
        self.start()
        [client_up] = self.events("client", LinkUp)
        [server_up] = self.events("server", LinkUp)
        assert isinstance(client_up, LinkUp) and isinstance(server_up, LinkUp)
        assert server_up.user == user and server_up.auth_method is method
        assert self.hlak("client") == self.hlak("server") != ZERO_HLAK

    def hlak(self, side: str) -> bytes:
        """The HLAK that 'client' or 'server' authenticated with (the session does not keep it)."""
        [authenticated] = self.events(side, Authenticated)
        assert isinstance(authenticated, Authenticated)
        return authenticated.hlak

    def down(self, side: str) -> LinkDown:
        """The LinkDown event of one side (fails if there is none)."""
        found = self.events(side, LinkDown)
        assert found, f"{side} is not down"
        event = found[0]
        assert isinstance(event, LinkDown)
        return event
