"""IPv6CP: interface identifiers, collisions, Naks, Rejects, link-local addresses."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.ppp.constants import Code, Protocol
from pysstp.ppp.events import LayerUp
from pysstp.ppp.fsm import FsmState
from pysstp.ppp.ipv6cp import Ipv6cp, link_local_address
from pysstp.ppp.packet import ControlPacket, Option, decode_options

from helpers.ppp_wire import Wire, fixed_random, packet, seeded_random, sent

IID = bytes.fromhex("f1 01 03 43 cf ea 4f fe")  # MikroTik's, as recorded


def started(ipv6cp: Ipv6cp) -> list[bytes]:
    ipv6cp.open(0.0)
    ipv6cp.up(0.0)
    return sent(ipv6cp)


def test_request_and_link_local() -> None:
    ipv6cp = Ipv6cp(interface_id=IID)
    assert started(ipv6cp) == [packet("01 01 00 0e 01 0a f1 01 03 43 cf ea 4f fe")]
    assert ipv6cp.local_link_local == IPv6Address("fe80::f101:343:cfea:4ffe")
    assert ipv6cp.peer_link_local is None
    assert link_local_address(bytes(7) + b"\x01") == IPv6Address("fe80::1")


def test_two_ends_open() -> None:
    a, b = Ipv6cp(random_bytes=seeded_random(1)), Ipv6cp(random_bytes=seeded_random(2))
    wire = Wire(a, b)
    wire.start()
    assert a.state == b.state == FsmState.OPENED
    assert wire.events_a[-1] == LayerUp(Protocol.IPV6CP)
    assert (a.peer_iid, b.peer_iid) == (b.local_iid, a.local_iid)
    assert a.local_iid != b.local_iid and any(a.local_iid) and any(b.local_iid)
    assert a.peer_link_local == b.local_link_local


def test_equal_identifiers_are_resolved() -> None:
    a = Ipv6cp(random_bytes=seeded_random(3), interface_id=IID)
    b = Ipv6cp(random_bytes=seeded_random(4), interface_id=IID)
    wire = Wire(a, b)
    wire.start()
    assert Code.CONFIGURE_NAK in wire.codes("a>b") + wire.codes("b>a")
    assert a.state == b.state == FsmState.OPENED
    assert a.local_iid != b.local_iid
    assert (a.peer_iid, b.peer_iid) == (b.local_iid, a.local_iid)


@pytest.mark.parametrize("proposed", [bytes(8), IID])
def test_zero_or_own_identifier_is_naked(proposed: bytes) -> None:
    ipv6cp = Ipv6cp(random_bytes=fixed_random(IID), interface_id=IID)
    started(ipv6cp)
    ipv6cp.receive(ControlPacket(Code.CONFIGURE_REQUEST, 5, Option(1, proposed).encode()).encode(), 0.1)
    (nak,) = [ControlPacket.decode(p) for p in sent(ipv6cp)]
    assert (nak.code, nak.identifier) == (Code.CONFIGURE_NAK, 5)
    (suggestion,) = decode_options(nak.data)
    assert suggestion.type == 1 and suggestion.value not in (bytes(8), IID)


def test_compression_and_bad_length_are_rejected() -> None:
    ipv6cp = Ipv6cp(interface_id=IID)
    started(ipv6cp)
    ipv6cp.receive(packet("01 02 00 0c 02 04 00 4f 01 04 00 01"), 0.1)
    assert sent(ipv6cp) == [packet("04 02 00 0c 02 04 00 4f 01 04 00 01")]


def test_nak_is_adopted_and_reject_stops_asking() -> None:
    ipv6cp = Ipv6cp(interface_id=IID)
    first = ControlPacket.decode(started(ipv6cp)[0])
    suggested = bytes.fromhex("02 00 00 00 00 00 00 09")
    ipv6cp.receive(
        ControlPacket(Code.CONFIGURE_NAK, first.identifier, Option(1, suggested).encode()).encode(), 0.1
    )
    second = ControlPacket.decode(sent(ipv6cp)[0])
    assert decode_options(second.data) == [Option(1, suggested)]
    assert ipv6cp.local_iid == suggested
    ipv6cp.receive(
        ControlPacket(Code.CONFIGURE_NAK, second.identifier, Option(1, bytes(8)).encode()).encode(), 0.2
    )
    third = ControlPacket.decode(sent(ipv6cp)[0])
    assert ipv6cp.local_iid not in (bytes(8), suggested)  # a zero suggestion is not taken: a fresh one is
    ipv6cp.receive(ControlPacket(Code.CONFIGURE_REJECT, third.identifier, third.data).encode(), 0.3)
    assert ControlPacket.decode(sent(ipv6cp)[0]).data == b""


def test_invalid_interface_id() -> None:
    with pytest.raises(ValueError):
        Ipv6cp(interface_id=bytes(8))
    with pytest.raises(ValueError):
        Ipv6cp(interface_id=b"\x01")


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=30), max_size=8))
def test_random_packets_never_raise(packets: list[bytes]) -> None:
    ipv6cp = Ipv6cp(random_bytes=seeded_random(5))
    started(ipv6cp)
    for data in packets:
        ipv6cp.receive(data, 1.0)
        ipv6cp.receive(bytes([1, 1, 0, 4 + len(data)]) + data, 1.0)
    ipv6cp.handle_timer(100.0)
    for data in sent(ipv6cp):
        ControlPacket.decode(data)
