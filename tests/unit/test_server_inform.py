"""The server's DHCPINFORM responder (pysstp.server.inform): what it answers, what it drops and counts, and
what it leaves to the TUN."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp import dhcp, udp
from pysstp.dhcp import ClasslessRoute, MessageType, Option
from pysstp.errors import ProtocolError
from pysstp.server import inform
from pysstp.server.inform import NotAnswered, Push, Responder, Session
from pysstp.udp import Datagram

CLIENT = IPv4Address("10.77.0.2")
SERVER = IPv4Address("10.77.0.1")
MAC = bytes.fromhex("0250f2000003")
SESSION = Session(
    address=CLIENT,
    server_address=SERVER,
    network=IPv4Network("10.77.0.0/24"),
    dns=(IPv4Address("10.0.0.53"),),
    push=Push(
        routes=(IPv4Network("10.99.0.0/16"), IPv6Network("2001:db8:99::/48"), IPv4Network("10.98.1.0/24")),
        domain="corp.example",
        wins=(IPv4Address("10.0.0.44"),),
    ),
)


def inform_packet(
    *,
    source: IPv4Address = CLIENT,
    destination: IPv4Address = udp.BROADCAST,
    source_port: int = dhcp.CLIENT_PORT,
    destination_port: int = dhcp.SERVER_PORT,
    message: dhcp.Message | None = None,
) -> bytes:
    message = message or dhcp.windows_inform(0x1234, CLIENT, MAC, "DESKTOP")
    return udp.build(Datagram(source, destination, source_port, destination_port, dhcp.build(message)))


@pytest.mark.parametrize("destination", [udp.BROADCAST, SERVER])
def test_inform_is_answered_to_ciaddr(destination: IPv4Address) -> None:
    reply = inform.respond(inform_packet(destination=destination), SESSION)
    assert reply is not None
    datagram = udp.parse(reply)
    assert (datagram.source, datagram.destination) == (SERVER, CLIENT)
    assert (datagram.source_port, datagram.destination_port) == (67, 68)
    ack = dhcp.parse(datagram.payload)
    assert ack.message_type is MessageType.ACK
    assert (ack.xid, ack.ciaddr, ack.chaddr[:6], ack.yiaddr) == (0x1234, CLIENT, MAC, IPv4Address(0))
    assert ack.option(51) is None  # no lease time (RFC 2131 §4.3.5)
    assert [code for code, _ in ack.options] == [53, 54, 1, 6, 15, 44, 121, 249]
    configuration = dhcp.configuration(ack)
    assert configuration == dhcp.Configuration(
        server=SERVER,
        netmask=IPv4Address("255.255.255.0"),
        dns=(IPv4Address("10.0.0.53"),),
        domain="corp.example",
        wins=(IPv4Address("10.0.0.44"),),
        # IPv6 networks go into router advertisements, not DHCP.
        routes=(
            ClasslessRoute(IPv4Network("10.99.0.0/16"), SERVER),
            ClasslessRoute(IPv4Network("10.98.1.0/24"), SERVER),
        ),
    )
    assert ack.option(Option.CLASSLESS_ROUTES) == ack.option(Option.MS_CLASSLESS_ROUTES)


def test_nothing_to_push_gives_the_bare_answer() -> None:
    session = Session(CLIENT, SERVER, IPv4Network("10.77.0.0/24"), (), Push())
    reply = inform.respond(inform_packet(), session)
    assert reply is not None
    ack = dhcp.parse(udp.parse(reply).payload)
    assert [code for code, _ in ack.options] == [53, 54, 1]


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (inform_packet(source=IPv4Address("192.168.50.7")), "not the session's own address"),
        (inform_packet(source_port=5000), "not the session's own address"),
        (
            inform_packet(
                message=dhcp.Message(
                    op=dhcp.BOOTREQUEST, xid=1, options=((53, bytes((MessageType.REQUEST,))),)
                )
            ),
            "DHCP REQUEST; only DHCPINFORM",
        ),
        (inform_packet(message=dhcp.Message(op=dhcp.BOOTREQUEST, xid=1)), "no message type"),
        (
            inform_packet(message=dhcp.windows_inform(1, IPv4Address("10.77.0.9"), MAC)),
            "for 10.77.0.9, not the session's address",
        ),
        (udp.build(Datagram(CLIENT, udp.BROADCAST, 68, 67, b"\x01" * 100)), "too short for a DHCP message"),
        (inform_packet()[:-3] + b"\x00\x00\x00", "bad UDP checksum"),
    ],
)
def test_what_is_not_answered(packet: bytes, reason: str) -> None:
    with pytest.raises(Exception, match=reason) as info:
        inform.respond(packet, SESSION)
    assert isinstance(info.value, NotAnswered | dhcp.DhcpError | udp.DatagramError)


def test_other_udp_goes_on() -> None:
    assert inform.respond(inform_packet(destination_port=53), SESSION) is None
    # A later fragment has no port to read: not the DHCP server's.
    packet = bytearray(inform_packet())
    packet[6:8] = (0x0010).to_bytes(2, "big")
    assert inform.respond(bytes(packet), SESSION) is None


@dataclass
class FakeConnection:
    peer: str = "192.0.2.9:50000"
    sent: list[bytes] = field(default_factory=list)

    def send_ip_batch(self, packets: list[bytes]) -> None:
        self.sent += packets


def test_responder_answers_drops_and_counts() -> None:
    connection = FakeConnection()
    responder: Responder[FakeConnection] = Responder(SERVER, lambda c: SESSION)
    assert responder.targets == (b"\xff\xff\xff\xff", SERVER.packed)
    assert responder.last_octets == {255, 1}
    assert responder.take(connection, memoryview(inform_packet()))
    assert len(connection.sent) == 1 and responder.dropped == 0
    assert responder.take(connection, memoryview(inform_packet(source=IPv4Address("192.168.50.7"))))
    assert responder.dropped == 1
    assert not responder.take(connection, memoryview(inform_packet(destination_port=53)))
    assert responder.dropped == 1 and len(connection.sent) == 1


def test_responder_leaves_a_session_without_address_alone() -> None:
    responder: Responder[FakeConnection] = Responder(SERVER, lambda c: None)
    assert not responder.take(FakeConnection(), memoryview(inform_packet()))
    assert responder.dropped == 0


@given(st.binary(max_size=400), st.sampled_from([udp.BROADCAST, SERVER]))
def test_respond_raises_only_protocol_errors(payload: bytes, destination: IPv4Address) -> None:
    packets = [
        udp.build(Datagram(CLIENT, destination, dhcp.CLIENT_PORT, dhcp.SERVER_PORT, payload)),
        udp.build(
            Datagram(
                CLIENT, destination, dhcp.CLIENT_PORT, dhcp.SERVER_PORT, inform_packet()[28:268] + payload
            )
        ),
        udp.build(Datagram(CLIENT, destination, 68, 67, b""))[:20] + payload,
    ]
    for packet in packets:
        with contextlib.suppress(ProtocolError):
            inform.respond(packet, SESSION)
