"""The client link against a scripted SoftEther-like server (tests/peers/softether_like.py)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from pysstp.link import ClientLink, LinkDown, LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.sstp.constants import HashProtocol

from helpers.conversation import CERT_DER, client_config, ipv4_packet, seeded_random
from helpers.softether_like import SoftEtherLikeServer


class SoftEtherCall:
    """The client link and the scripted server, exchanging bytes under a fake clock."""

    def __init__(self, **client_overrides: object) -> None:
        self.now = 0.0
        self.peer = SoftEtherLikeServer()
        self.client = ClientLink(client_config(**client_overrides), random_bytes=seeded_random(7))
        self.client.set_server_certificate(CERT_DER)
        self.events: list[object] = []
        self.client.start(self.now)
        self.pump()

    def pump(self) -> None:
        for _ in range(200):
            out = self.client.data_to_send()
            self.events.extend(self.client.take_events())
            if not out or self.peer.closed:
                return
            answer = self.peer.receive(out, self.now)
            if answer and not self.client.is_closed:
                self.client.receive_data(answer, self.now)
        raise AssertionError("did not settle")

    def run(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            answer = self.peer.handle_timer(self.now)
            if answer and not self.client.is_closed:
                self.client.receive_data(answer, self.now)
            deadline = self.client.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.client.handle_timer(self.now)
            self.pump()

    def of(self, kind: type) -> list[object]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.PAP])
def test_client_comes_up_against_softether(method: AuthMethod) -> None:
    call = SoftEtherCall(auth_methods=(method,))
    call.run(8)  # SoftEther retransmits its IPCP request every 3 s; the client must cope with duplicates
    ups = call.of(LinkUp)
    assert len(ups) == 1, call.events
    up = ups[0]
    assert isinstance(up, LinkUp)
    assert up.auth_method is method
    assert up.hash_protocol is HashProtocol.SHA256
    assert up.local_address == IPv4Address("192.168.30.10")
    assert up.peer_address == IPv4Address("192.168.30.1")
    assert up.dns_servers == (IPv4Address("192.168.30.1"),)
    assert call.peer.connected and call.peer.authenticated and call.peer.ipcp_up
    assert call.client.session.lcp.magic == 0  # SoftEther rejected Magic-Number


def test_client_stays_up_with_softether_echoes_and_passes_traffic() -> None:
    call = SoftEtherCall()
    call.run(90)  # past the 60 s hello horizon: SoftEther's own echoes keep the call alive
    assert not call.of(LinkDown)
    assert not call.peer.closed
    packet = ipv4_packet(IPv4Address("192.168.30.10"), IPv4Address("192.168.30.1"), b"ping")
    assert call.client.send_ip(packet)
    call.pump()
    assert call.peer.ip_received == [packet]


def test_wrong_password_against_softether_is_reported() -> None:
    call = SoftEtherCall(password="nope")
    call.run(5)
    downs = call.of(LinkDown)
    assert downs, call.events
    down = downs[0]
    assert isinstance(down, LinkDown)
    assert "691" in down.reason


def test_disconnect_from_softether() -> None:
    call = SoftEtherCall()
    call.run(5)
    call.client.close(call.now)
    call.run(10)
    assert call.peer.closed
    downs = call.of(LinkDown)
    assert downs and isinstance(downs[0], LinkDown) and not downs[0].error
