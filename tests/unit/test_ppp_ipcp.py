"""IPCP policy: Windows and SoftEther byte traces, server vs client in memory, stubborn and broken peers."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.ppp.constants import Code, Protocol
from pysstp.ppp.events import LayerDown, LayerFinished, LayerUp
from pysstp.ppp.frame import encode_frame
from pysstp.ppp.fsm import FsmState
from pysstp.ppp.ipcp import Ipcp, IpcpConfig
from pysstp.ppp.packet import ControlPacket, Option, encode_options

from helpers.ppp_wire import Wire, packet, sent

SERVER = IpcpConfig(
    role="server",
    local_address=IPv4Address("10.0.0.1"),
    peer_address=IPv4Address("10.0.0.5"),
    dns=(IPv4Address("10.0.0.1"),),
)


def started(ipcp: Ipcp) -> list[bytes]:
    ipcp.open(0.0)
    ipcp.up(0.0)
    return sent(ipcp)


def request(identifier: int, *options: tuple[int, str]) -> bytes:
    encoded = encode_options(Option(t, IPv4Address(a).packed) for t, a in options)
    return ControlPacket(Code.CONFIGURE_REQUEST, identifier, encoded).encode()


def test_windows_request_gets_reference_nak() -> None:
    ipcp = Ipcp(SERVER)
    assert started(ipcp) == [packet("01 01 00 0a 03 06 0a 00 00 01")]
    # As recorded: Windows asks for an address, DNS and WINS, all 0.0.0.0.
    windows = packet(
        "10 00 00 2A FF 03 80 21 01 07 00 22 03 06 00 00 00 00 81 06 00 00 00 00"
        " 82 06 00 00 00 00 83 06 00 00 00 00 84 06 00 00 00 00"
    )
    ipcp.receive(windows[8:], 0.1)
    assert sent(ipcp) == [packet("04 07 00 10 82 06 00 00 00 00 84 06 00 00 00 00")]  # WINS rejected first
    without_wins = request(7, (3, "0.0.0.0"), (0x81, "0.0.0.0"), (0x83, "0.0.0.0"))
    ipcp.receive(without_wins, 0.2)
    (nak,) = sent(ipcp)
    sstp = bytes.fromhex("10 00") + (len(nak) + 8).to_bytes(2, "big") + encode_frame(Protocol.IPCP, nak)
    assert sstp == packet(
        "10 00 00 1E FF 03 80 21 03 07 00 16 03 06 0A 00 00 05 81 06 0A 00 00 01 83 06 0A 00 00 01"
    )
    ipcp.receive(request(8, (3, "10.0.0.5"), (0x81, "10.0.0.1"), (0x83, "10.0.0.1")), 0.3)
    assert ControlPacket.decode(sent(ipcp)[0]).code == Code.CONFIGURE_ACK
    ipcp.receive(packet("02 01 00 0a 03 06 0a 00 00 01"), 0.4)
    assert ipcp.state == FsmState.OPENED
    assert (ipcp.local_address, ipcp.peer_address) == (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.5"))
    assert ipcp.dns_servers == (IPv4Address("10.0.0.1"),)  # primary and secondary, as the client took them


def test_client_follows_softether() -> None:
    """As recorded: SoftEther rejects the secondary DNS, then Naks address and primary DNS."""
    ipcp = Ipcp(IpcpConfig(role="client"))
    assert started(ipcp) == [packet("01 01 00 16 03 06 00 00 00 00 81 06 00 00 00 00 83 06 00 00 00 00")]
    ipcp.receive(packet("04 01 00 0a 83 06 00 00 00 00"), 0.1)
    assert sent(ipcp) == [packet("01 02 00 10 03 06 00 00 00 00 81 06 00 00 00 00")]
    ipcp.receive(packet("03 02 00 10 03 06 c0 a8 1e 0a 81 06 c0 a8 1e 01"), 0.2)
    assert sent(ipcp) == [packet("01 03 00 10 03 06 c0 a8 1e 0a 81 06 c0 a8 1e 01")]
    ipcp.receive(packet("01 03 00 0a 03 06 c0 a8 1e 01"), 0.3)
    assert sent(ipcp) == [packet("02 03 00 0a 03 06 c0 a8 1e 01")]
    ipcp.receive(packet("02 03 00 10 03 06 c0 a8 1e 0a 81 06 c0 a8 1e 01"), 0.4)
    assert ipcp.state == FsmState.OPENED
    assert ipcp.take_events()[-1] == LayerUp(Protocol.IPCP)
    assert ipcp.local_address == IPv4Address("192.168.30.10")
    assert ipcp.peer_address == IPv4Address("192.168.30.1")
    assert ipcp.dns_servers == (IPv4Address("192.168.30.1"),)


def test_client_rejects_unknown_options_and_acks_any_address() -> None:
    ipcp = Ipcp(IpcpConfig(role="client", request_dns=False))
    assert started(ipcp) == [packet("01 01 00 0a 03 06 00 00 00 00")]
    ipcp.receive(request(4, (3, "172.23.24.14"), (0x81, "8.8.8.8")), 0.1)
    assert sent(ipcp) == [packet("04 04 00 0a 81 06 08 08 08 08")]  # DNS in a server's request: rejected
    ipcp.receive(packet("01 05 00 0a 03 06 ac 17 18 0e"), 0.2)
    assert sent(ipcp) == [packet("02 05 00 0a 03 06 ac 17 18 0e")]
    assert ipcp.peer_address == IPv4Address("172.23.24.14")


@pytest.mark.parametrize("dns", [(), ("10.0.0.1",), ("10.0.0.1", "10.0.0.2")])
def test_server_and_client_in_memory(dns: tuple[str, ...]) -> None:
    servers = tuple(IPv4Address(d) for d in dns)
    server = Ipcp(IpcpConfig("server", IPv4Address("10.1.0.1"), IPv4Address("10.1.0.7"), servers))
    client = Ipcp(IpcpConfig(role="client"))
    wire = Wire(server, client)
    wire.start()
    assert server.state == client.state == FsmState.OPENED
    assert (client.local_address, client.peer_address) == (IPv4Address("10.1.0.7"), IPv4Address("10.1.0.1"))
    assert (server.local_address, server.peer_address) == (IPv4Address("10.1.0.1"), IPv4Address("10.1.0.7"))
    assert client.dns_servers == servers
    assert server.dns_servers == servers


def test_a_client_renegotiating_after_opened_gets_the_same_addresses_again() -> None:
    config = IpcpConfig(
        "server", IPv4Address("10.1.0.1"), IPv4Address("10.1.0.7"), (IPv4Address("10.1.0.1"),)
    )
    server = Ipcp(config)
    client = Ipcp(IpcpConfig(role="client"))
    wire = Wire(server, client)
    wire.start()
    # What the server agreed is what it offered: the call keeps the offered objects, not copies.
    assert server.peer_address is config.peer_address and server.dns_servers is config.dns
    client.down(wire.now)
    client.up(wire.now)  # a new Configure-Request reaches the Opened server (RFC 1661 §4.1: tld,scr,sca)
    wire.events_a.clear()
    wire.pump()
    assert server.state == client.state == FsmState.OPENED
    assert [type(event) for event in wire.events_a] == [LayerDown, LayerUp]
    assert (client.local_address, client.peer_address) == (IPv4Address("10.1.0.7"), IPv4Address("10.1.0.1"))
    assert (server.local_address, server.peer_address) == (IPv4Address("10.1.0.1"), IPv4Address("10.1.0.7"))
    assert client.dns_servers == server.dns_servers == (IPv4Address("10.1.0.1"),)


def test_server_never_acks_unspecified_and_hints_missing_address() -> None:
    ipcp = Ipcp(SERVER)
    started(ipcp)
    ipcp.receive(request(1, (3, "0.0.0.0")), 0.1)
    assert sent(ipcp) == [packet("03 01 00 0a 03 06 0a 00 00 05")]
    ipcp.receive(packet("01 02 00 04"), 0.2)  # no IP-Address at all: read as 0.0.0.0, Nak'ed with a hint
    assert sent(ipcp) == [packet("03 02 00 0a 03 06 0a 00 00 05")]


def test_server_rejects_compression_and_dns_without_servers() -> None:
    ipcp = Ipcp(IpcpConfig("server", IPv4Address("10.0.0.1"), IPv4Address("10.0.0.5")))
    started(ipcp)
    vj = packet("02 06 00 2d 0f 01")
    ipcp.receive(ControlPacket(1, 3, vj + packet("03 06 0a 00 00 05 81 06 00 00 00 00")).encode(), 0.1)
    assert sent(ipcp) == [ControlPacket(Code.CONFIGURE_REJECT, 3, vj + packet("81 06 00 00 00 00")).encode()]


def test_client_insisting_on_another_address_fails() -> None:
    ipcp = Ipcp(SERVER)
    started(ipcp)
    for identifier in range(5):
        ipcp.receive(request(identifier, (3, "10.9.9.9")), identifier)
        assert sent(ipcp) == [
            ControlPacket(Code.CONFIGURE_NAK, identifier, packet("03 06 0a 00 00 05")).encode()
        ]
    ipcp.receive(request(5, (3, "10.9.9.9")), 5.0)
    assert sent(ipcp) == [packet("04 05 00 0a 03 06 0a 09 09 09")]  # Max-Failure: the Nak became a Reject
    ipcp.receive(packet("01 06 00 04"), 6.0)  # the client dropped the option: nothing left to agree on
    assert ControlPacket.decode(sent(ipcp)[0]).code == Code.TERMINATE_REQUEST
    ipcp.receive(packet("06 02 00 04"), 6.1)
    assert ipcp.state == FsmState.CLOSED
    assert ipcp.take_events()[-1] == LayerFinished(
        Protocol.IPCP, "IPCP did not converge: peer ignored 5 Naks", error=True
    )


def test_client_fails_without_an_address() -> None:
    ipcp = Ipcp(IpcpConfig(role="client"))
    first = ControlPacket.decode(started(ipcp)[0])
    ipcp.receive(ControlPacket(Code.CONFIGURE_ACK, first.identifier, first.data).encode(), 0.1)
    assert ipcp.state == FsmState.CLOSING
    assert ControlPacket.decode(sent(ipcp)[0]).data.startswith(b"server acknowledged 0.0.0.0")

    ipcp = Ipcp(IpcpConfig(role="client"))
    first = ControlPacket.decode(started(ipcp)[0])
    ipcp.receive(ControlPacket(Code.CONFIGURE_REJECT, first.identifier, first.data[:6]).encode(), 0.1)
    assert ipcp.state == FsmState.CLOSING


def test_server_drops_its_address_when_rejected() -> None:
    ipcp = Ipcp(SERVER)
    first = ControlPacket.decode(started(ipcp)[0])
    ipcp.receive(ControlPacket(Code.CONFIGURE_REJECT, first.identifier, first.data).encode(), 0.1)
    assert ControlPacket.decode(sent(ipcp)[0]).data == b""
    assert ipcp.local_address == IPv4Address("10.0.0.1")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        IpcpConfig(role="server", local_address=IPv4Address("10.0.0.1"))
    with pytest.raises(ValueError):
        IpcpConfig("server", IPv4Address("10.0.0.1"), IPv4Address("0.0.0.0"))
    with pytest.raises(ValueError):
        IpcpConfig("server", IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), (IPv4Address("1.1.1.1"),) * 3)


@settings(max_examples=200)
@given(st.booleans(), st.lists(st.binary(max_size=30), max_size=8))
def test_random_packets_never_raise(as_server: bool, packets: list[bytes]) -> None:
    ipcp = Ipcp(SERVER if as_server else IpcpConfig(role="client"))
    started(ipcp)
    for data in packets:
        ipcp.receive(data, 1.0)
        ipcp.receive(bytes([1, 1, 0, 4 + len(data)]) + data, 1.0)
    ipcp.handle_timer(100.0)
    for data in sent(ipcp):
        ControlPacket.decode(data)
