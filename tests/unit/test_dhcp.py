"""DHCP codec (pysstp.dhcp) and UDP-in-IPv4 (pysstp.udp): a Windows-like DHCPINFORM byte image, the RFC 3442
examples, the DHCPACK to an INFORM, round trips and fuzzing."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp import dhcp, udp
from pysstp.dhcp import ClasslessRoute, Configuration, DhcpError, MessageType, Option
from pysstp.udp import Datagram, DatagramError

# A DHCPINFORM as Windows 10/11's VPN client sends it over the PPP link after IPCP, written out by hand
# field by field. No capture of a real one is in the repo; the fields follow RFC 2131 §4.4.3 (ciaddr is
# the IPCP address, no requested address, no lease time), MS-DHCPE 2.2.6.1 (option 77 is the bare string
# "RRAS.Microsoft", no RFC 3004 inner length) and what public Wireshark/Network Monitor decodes of RAS
# INFORMs show: htype 1 with the WAN adapter's 6-byte address, client identifier 01+MAC, host name,
# vendor class "MSFT 5.0", and the parameter request list 1 15 3 6 44 46 47 31 33 121 249 43.
WINDOWS_INFORM = bytes.fromhex(
    "01 01 06 00"  # op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
    "5a 1c 3e 07"  # xid
    "00 00 00 00"  # secs 0, flags 0 (no broadcast bit: the client has an address)
    "0a 4d 00 02"  # ciaddr 10.77.0.2 (from IPCP)
    "00 00 00 00"  # yiaddr
    "00 00 00 00"  # siaddr
    "00 00 00 00"  # giaddr
    "02 50 f2 00 00 03"
    + "00" * 10  # chaddr: the WAN miniport's locally administered address
    + "00" * 64  # sname
    + "00" * 128  # file
    + "63 82 53 63"  # magic cookie
    "35 01 08"  # 53: DHCPINFORM
    "3d 07 01 02 50 f2 00 00 03"  # 61: client identifier, type 1 + address
    "0c 07 44 45 53 4b 54 4f 50"  # 12: host name "DESKTOP"
    "3c 08 4d 53 46 54 20 35 2e 30"  # 60: "MSFT 5.0"
    "4d 0e 52 52 41 53 2e 4d 69 63 72 6f 73 6f 66 74"  # 77: "RRAS.Microsoft"
    "37 0c 01 0f 03 06 2c 2e 2f 1f 21 79 f9 2b"  # 55: parameter request list
    "ff"  # end
)


def test_windows_inform_byte_image_parses() -> None:
    message = dhcp.parse(WINDOWS_INFORM)
    assert message.op == dhcp.BOOTREQUEST
    assert message.message_type is MessageType.INFORM
    assert message.xid == 0x5A1C3E07
    assert message.ciaddr == IPv4Address("10.77.0.2")
    assert message.chaddr[:6] == bytes.fromhex("0250f2000003")
    assert message.option(Option.USER_CLASS) == b"RRAS.Microsoft"
    requested = message.option(Option.PARAMETER_REQUEST_LIST)
    assert requested is not None and {121, 249, 15, 6, 1} <= set(requested)


def test_our_inform_is_the_windows_image() -> None:
    built = dhcp.build(
        dhcp.windows_inform(0x5A1C3E07, IPv4Address("10.77.0.2"), bytes.fromhex("0250f2000003"), "DESKTOP")
    )
    assert built == WINDOWS_INFORM


def test_short_messages_are_padded() -> None:
    # BOOTP's minimum of 300 bytes (RFC 1542 §2.1).
    built = dhcp.build(dhcp.Message(op=dhcp.BOOTREQUEST, xid=1))
    assert len(built) == dhcp.MIN_MESSAGE_LEN and dhcp.parse(built).options == ()


# RFC 3442 §3: the destination descriptors of its examples, with a router appended to each.
RFC3442_EXAMPLES = [
    ("0.0.0.0/0", "00"),
    ("10.0.0.0/8", "08 0a"),
    ("10.17.0.0/16", "10 0a 11"),
    ("10.27.129.0/24", "18 0a 1b 81"),
    ("10.229.0.128/25", "19 0a e5 00 80"),
    ("10.198.122.47/32", "20 0a c6 7a 2f"),
]


@pytest.mark.parametrize(("network", "descriptor"), RFC3442_EXAMPLES)
def test_rfc3442_examples(network: str, descriptor: str) -> None:
    route = ClasslessRoute(IPv4Network(network), IPv4Address("192.0.2.1"))
    wire = bytes.fromhex(descriptor) + bytes((192, 0, 2, 1))
    assert dhcp.encode_classless_routes([route]) == wire
    assert dhcp.decode_classless_routes(wire) == (route,)


def test_classless_routes_several_in_one_option() -> None:
    routes = tuple(ClasslessRoute(IPv4Network(n), IPv4Address("10.77.0.1")) for n, _ in RFC3442_EXAMPLES)
    assert dhcp.decode_classless_routes(dhcp.encode_classless_routes(routes)) == routes


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("21 0a 00 00 00 00 01 02 03 04", "exceeds 32"),
        ("18 0a 00 00 0a 00", "ends inside"),
        ("08 0a 01 02 03", "ends inside"),
        ("08 0b 01 02 03 04 05", "ends inside"),
        ("07 0b 01 02 03 04", "beyond its prefix"),
    ],
)
def test_classless_routes_malformed(wire: str, reason: str) -> None:
    with pytest.raises(DhcpError, match=reason):
        dhcp.decode_classless_routes(bytes.fromhex(wire))


def test_ack_to_windows_inform() -> None:
    inform = dhcp.parse(WINDOWS_INFORM)
    routes = (ClasslessRoute(IPv4Network("10.99.0.0/16"), IPv4Address("10.77.0.1")),)
    answer = Configuration(
        server=IPv4Address("10.77.0.1"),
        netmask=IPv4Address("255.255.255.0"),
        dns=(IPv4Address("10.0.0.53"), IPv4Address("10.0.0.54")),
        domain="corp.example",
        wins=(IPv4Address("10.0.0.44"),),
        routes=routes,
    )
    wire = dhcp.build(dhcp.ack(inform, answer))
    reply = dhcp.parse(wire)
    # RFC 2131 §4.3.5 and table 3: echoed fields, yiaddr 0, no lease time.
    assert reply.op == dhcp.BOOTREPLY and reply.message_type is MessageType.ACK
    assert (reply.xid, reply.ciaddr, reply.chaddr) == (inform.xid, inform.ciaddr, inform.chaddr)
    assert reply.yiaddr == IPv4Address(0)
    assert reply.option(51) is None
    codes = [code for code, _ in reply.options]
    assert codes == [53, 54, 1, 6, 15, 44, 121, 249]
    assert reply.option(Option.CLASSLESS_ROUTES) == reply.option(Option.MS_CLASSLESS_ROUTES)
    assert reply.option(Option.CLASSLESS_ROUTES) == bytes.fromhex("10 0a 63 0a 4d 00 01")
    assert dhcp.configuration(reply) == answer


def test_configuration_prefers_121_over_249() -> None:
    own = ClasslessRoute(IPv4Network("10.1.0.0/16"), IPv4Address(0))
    microsoft = ClasslessRoute(IPv4Network("10.2.0.0/16"), IPv4Address(0))
    options = (
        (Option.MESSAGE_TYPE, bytes((MessageType.ACK,))),
        (Option.SERVER_IDENTIFIER, IPv4Address("10.77.0.1").packed),
        (Option.MS_CLASSLESS_ROUTES, dhcp.encode_classless_routes([microsoft])),
    )
    message = dhcp.Message(op=dhcp.BOOTREPLY, xid=1, options=options)
    assert dhcp.configuration(message).routes == (microsoft,)
    message = dhcp.Message(
        op=dhcp.BOOTREPLY,
        xid=1,
        options=(*options, (Option.CLASSLESS_ROUTES, dhcp.encode_classless_routes([own]))),
    )
    assert dhcp.configuration(message).routes == (own,)


def test_domain_with_trailing_nul_and_long_option_split() -> None:
    # Some servers end option 15 with a NUL; values over 255 bytes are split and joined (RFC 3396).
    long_routes = tuple(
        ClasslessRoute(IPv4Network(f"10.{i}.0.0/16"), IPv4Address("10.77.0.1")) for i in range(60)
    )
    message = dhcp.Message(
        op=dhcp.BOOTREPLY,
        xid=7,
        options=(
            (Option.MESSAGE_TYPE, bytes((MessageType.ACK,))),
            (Option.SERVER_IDENTIFIER, IPv4Address("10.77.0.1").packed),
            (Option.DOMAIN_NAME, b"corp.example\x00"),
            (Option.CLASSLESS_ROUTES, dhcp.encode_classless_routes(long_routes)),
        ),
    )
    wire = dhcp.build(message)
    assert wire.count(bytes((Option.CLASSLESS_ROUTES, 255))) == 1
    parsed = dhcp.configuration(dhcp.parse(wire))
    assert parsed.domain == "corp.example"
    assert parsed.routes == long_routes


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:200], "too short"),
        (lambda b: b"\x03" + b[1:], "neither request nor reply"),
        (lambda b: b[:2] + b"\x11" + b[3:], "hardware address length"),
        (lambda b: b[:236] + b"\x00\x00\x00\x00" + b[240:], "magic cookie"),
        (lambda b: b[:-1], "no end option"),
        (lambda b: b[:-1] + b"\x0c\x09ab", "past the end"),
    ],
)
def test_malformed_messages(mutate: object, reason: str) -> None:
    assert callable(mutate)
    with pytest.raises(DhcpError, match=reason):
        dhcp.parse(mutate(WINDOWS_INFORM))


def test_configuration_refuses_what_is_not_an_ack() -> None:
    with pytest.raises(DhcpError, match="not a DHCPACK"):
        dhcp.configuration(dhcp.parse(WINDOWS_INFORM))
    no_server = dhcp.Message(op=dhcp.BOOTREPLY, xid=1, options=((53, b"\x05"),))
    with pytest.raises(DhcpError, match="server identifier"):
        dhcp.configuration(no_server)
    for code, value, reason in [
        (Option.SUBNET_MASK, b"\xff\xff", "not one IPv4 address"),
        (Option.DNS_SERVERS, b"\x01\x02\x03", "not a list"),
        (Option.DOMAIN_NAME, b"corp\xff", "not ASCII"),
        (Option.DOMAIN_NAME, b"co\nrp", "control characters"),
    ]:
        options = ((53, b"\x05"), (54, bytes(4)), (code, value))
        message = dhcp.Message(op=dhcp.BOOTREPLY, xid=1, options=options)
        with pytest.raises(DhcpError, match=reason):
            dhcp.configuration(message)


# -- UDP in IPv4 ---------------------------------------------------------------------------------


def test_udp_round_trip_and_checksums() -> None:
    datagram = Datagram(IPv4Address("10.77.0.2"), udp.BROADCAST, 68, 67, WINDOWS_INFORM)
    packet = udp.build(datagram)
    assert udp.internet_checksum(packet[:20]) == 0
    assert udp.parse(packet) == datagram
    assert packet[8] == udp.DEFAULT_TTL and packet[9] == udp.PROTOCOL_UDP


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: b"\x65" + p[1:], "not an IPv4"),
        (lambda p: p[:9] + b"\x06" + p[10:], "not UDP"),
        (lambda p: p[:6] + b"\x20\x00" + p[8:], "fragment"),
        (lambda p: p[:12] + b"\x0b" + p[13:], "header checksum"),
        (lambda p: p[:-1] + bytes((p[-1] ^ 1,)), "UDP checksum"),
        (lambda p: p[:30], "lengths do not fit"),
    ],
)
def test_udp_malformed(mutate: object, reason: str) -> None:
    assert callable(mutate)
    packet = udp.build(Datagram(IPv4Address("10.77.0.2"), udp.BROADCAST, 68, 67, b"abcdef"))
    with pytest.raises(DatagramError, match=reason):
        udp.parse(mutate(packet))


def test_udp_without_checksum_is_accepted() -> None:
    packet = udp.build(Datagram(IPv4Address("10.77.0.2"), udp.BROADCAST, 68, 67, b"abcdef"))
    assert udp.parse(packet[:26] + b"\x00\x00" + packet[28:]).payload == b"abcdef"


# -- properties ----------------------------------------------------------------------------------

addresses = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
routes = st.builds(
    lambda address, width, router: ClasslessRoute(IPv4Network((address, width), strict=False), router),
    addresses,
    st.integers(0, 32),
    addresses,
)


@given(st.lists(routes, max_size=80))
def test_classless_routes_round_trip(values: list[ClasslessRoute]) -> None:
    assert dhcp.decode_classless_routes(dhcp.encode_classless_routes(values)) == tuple(values)


@given(
    st.integers(0, 2**32 - 1),
    addresses,
    st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=600)), max_size=8, unique_by=lambda o: o[0]),
)
def test_message_round_trip(xid: int, ciaddr: IPv4Address, options: list[tuple[int, bytes]]) -> None:
    message = dhcp.Message(op=dhcp.BOOTREQUEST, xid=xid, ciaddr=ciaddr, options=tuple(options))
    assert dhcp.parse(dhcp.build(message)) == message


@given(st.binary(max_size=400))
def test_parsers_raise_only_their_own_errors(data: bytes) -> None:
    for candidate in (data, WINDOWS_INFORM[:240] + data):
        try:
            message = dhcp.parse(candidate)
        except DhcpError:
            continue
        with contextlib.suppress(DhcpError):
            dhcp.configuration(message)
    with contextlib.suppress(DhcpError):
        dhcp.decode_classless_routes(data)
    with contextlib.suppress(DatagramError):
        udp.parse(data)
