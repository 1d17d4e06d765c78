"""The PROXY protocol header reader (HAProxy's proxy-protocol.txt, versions 1 and 2)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.server.proxy import (
    V1_MAX_LENGTH,
    V2_MAX_ADDRESS_LENGTH,
    V2_SIGNATURE,
    Command,
    MalformedProxyHeader,
    NotProxyHeader,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
    ProxyHeaderTooLong,
)

from helpers.proxy_header import tlv, v1_header, v2_header

TLS_CLIENT_HELLO = bytes.fromhex("160301020001")
HTTP_REQUEST = b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"


def read(data: bytes, piece: int | None = None) -> tuple[ProxyHeader | None, bytes]:
    """Feed ``data`` whole or in pieces of ``piece`` bytes; return the header and what follows it."""
    reader = ProxyHeaderReader()
    taken = 0
    for start in range(0, len(data), piece or max(len(data), 1)):
        chunk = data[start : start + (piece or len(data))]
        used = reader.feed(chunk)
        taken += used
        if reader.header is not None:
            break
    return reader.header, data[taken:]


# -- byte images of the spec's examples -------------------------------------------------------------


def test_v1_example_of_the_spec() -> None:
    header, rest = read(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n")
    assert header == ProxyHeader(1, Command.PROXY, ("192.168.0.1", 56324), ("192.168.0.11", 443), 47)
    assert rest == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6() -> None:
    header, rest = read(b"PROXY TCP6 2001:DB8::1 ::1 65535 0\r\n" + HTTP_REQUEST)
    assert header is not None
    assert header.source == ("2001:db8::1", 65535)
    assert header.destination == ("::1", 0)
    assert rest == HTTP_REQUEST


def test_v1_ipv4_mapped_source_is_the_ipv4_client() -> None:
    """HAProxy bound to ``:::443 v4v6`` writes an IPv4 client as inet_ntop does: ``::ffff:a.b.c.d``."""
    header, rest = read(b"PROXY TCP6 ::ffff:203.0.113.5 ::FFFF:192.0.2.1 51000 443\r\n" + TLS_CLIENT_HELLO)
    assert header is not None
    assert header.source == ("203.0.113.5", 51000)
    assert header.destination == ("192.0.2.1", 443)
    assert rest == TLS_CLIENT_HELLO


def test_v2_ipv4_mapped_source_is_the_ipv4_client() -> None:
    """The same client has the same source for back-off and limits, however the proxy reached it."""
    header, _ = read(v2_header(("::ffff:203.0.113.5", 51000), ("::ffff:192.0.2.1", 443)))
    assert header is not None
    assert header.source == ("203.0.113.5", 51000)
    assert header.destination == ("192.0.2.1", 443)


def test_v1_unknown_uses_the_real_endpoints() -> None:
    assert read(b"PROXY UNKNOWN\r\n" + TLS_CLIENT_HELLO) == (
        ProxyHeader(1, Command.PROXY, length=15),
        TLS_CLIENT_HELLO,
    )


def test_v1_longest_line_of_the_spec() -> None:
    """ "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\\r\\n" is 107 bytes, the limit."""
    full = ":".join(["ffff"] * 8)
    line = f"PROXY UNKNOWN {full} {full} 65535 65535\r\n".encode()
    assert len(line) == V1_MAX_LENGTH
    header, rest = read(line + b"x")
    assert header is not None and header.source is None and rest == b"x"


def test_v2_tcp4_image() -> None:
    """TCP over IPv4 (\\x21 \\x11), 12 bytes of addresses: 172.19.0.1:42578 to 172.19.0.3:80."""
    image = bytes.fromhex("0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050".replace(" ", ""))
    header, rest = read(image + TLS_CLIENT_HELLO)
    assert header == ProxyHeader(2, Command.PROXY, ("172.19.0.1", 42578), ("172.19.0.3", 80), 28)
    assert rest == TLS_CLIENT_HELLO


def test_v2_tcp6_with_tlvs_skipped() -> None:
    """TCP over IPv6 (\\x21 \\x21): 36 bytes of addresses, then TLVs (NOOP, AUTHORITY) that are skipped."""
    tlvs = tlv(0x04, b"") + tlv(0x02, b"vpn.example")
    image = (
        V2_SIGNATURE
        + bytes.fromhex("2121")
        + (36 + len(tlvs)).to_bytes(2, "big")
        + ipaddress.IPv6Address("2001:db8::5").packed
        + ipaddress.IPv6Address("2001:db8::1").packed
        + bytes.fromhex("d431 01bb")
        + tlvs
    )
    header, rest = read(image + b"next")
    assert header == ProxyHeader(2, Command.PROXY, ("2001:db8::5", 54321), ("2001:db8::1", 443), len(image))
    assert rest == b"next"


def test_v2_local_of_a_health_check() -> None:
    """HAProxy's checks: LOCAL, AF_UNSPEC, no addresses (\\x20 \\x00 \\x00\\x00)."""
    header, rest = read(V2_SIGNATURE + bytes.fromhex("20000000"))
    assert header == ProxyHeader(2, Command.LOCAL, length=16)
    assert rest == b""


def test_v2_local_skips_an_address_block() -> None:
    """ "Receivers MUST always consider this field to skip the appropriate number of bytes"."""
    header, rest = read(v2_header(("192.0.2.7", 1000), local=True) + b"after")
    assert header is not None and header.command is Command.LOCAL and header.source is None
    assert rest == b"after"


@pytest.mark.parametrize("family_transport", [0x00, 0x12, 0x22, 0x31, 0x32])
def test_v2_other_families_fall_back_to_the_real_endpoints(family_transport: int) -> None:
    header, _ = read(v2_header(("192.0.2.7", 1), family_transport=family_transport))
    assert header == ProxyHeader(2, Command.PROXY, length=16)


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (TLS_CLIENT_HELLO, NotProxyHeader),
        (HTTP_REQUEST, NotProxyHeader),
        (b"PROXY\r\n", NotProxyHeader),
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NotProxyHeader),
        (V2_SIGNATURE[:5] + b"x", NotProxyHeader),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", MalformedProxyHeader),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP6 ::1.2.3.4 ::1 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP6 2001:db8::1.2.3.4 ::1 1 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", MalformedProxyHeader),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", MalformedProxyHeader),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2", MalformedProxyHeader),
        (b"PROXY UNKNOWN " + b"x" * 100, ProxyHeaderTooLong),
        (V2_SIGNATURE + bytes.fromhex("11110000"), MalformedProxyHeader),
        (V2_SIGNATURE + bytes.fromhex("22110000"), MalformedProxyHeader),
        (V2_SIGNATURE + bytes.fromhex("21410000"), MalformedProxyHeader),
        (V2_SIGNATURE + bytes.fromhex("21130000"), MalformedProxyHeader),
        (V2_SIGNATURE + bytes.fromhex("2111000b") + bytes(11), MalformedProxyHeader),
        (V2_SIGNATURE + bytes.fromhex("2121000c") + bytes(12), MalformedProxyHeader),
        (
            V2_SIGNATURE + bytes.fromhex("2111") + (V2_MAX_ADDRESS_LENGTH + 1).to_bytes(2, "big"),
            ProxyHeaderTooLong,
        ),
    ],
)
def test_refused(data: bytes, error: type[ProxyHeaderError]) -> None:
    with pytest.raises(error):
        read(data)


def test_garbage_is_refused_at_its_first_byte() -> None:
    """The reader does not wait for a complete header to say that a ClientHello is not one."""
    with pytest.raises(NotProxyHeader):
        ProxyHeaderReader().feed(b"\x16")


def test_an_incomplete_header_takes_everything_and_waits() -> None:
    reader = ProxyHeaderReader()
    assert reader.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") == 31
    assert reader.header is None
    assert reader.feed(b"\nrest") == 1
    assert reader.header is not None and reader.header.source == ("1.2.3.4", 1)
    assert reader.feed(b"more") == 0


# -- properties --------------------------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
"""IPv4-mapped addresses come out as IPv4 (see the tests above)."""
ports = st.integers(0, 0xFFFF)


@st.composite
def endpoints(draw: st.DrawFn) -> tuple[tuple[str, int], tuple[str, int]]:
    hosts = draw(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)))
    return (hosts[0], draw(ports)), (hosts[1], draw(ports))


@given(endpoints(), st.binary(max_size=64), st.integers(1, 40))
def test_v1_round_trip(ends: tuple[tuple[str, int], tuple[str, int]], after: bytes, piece: int) -> None:
    data = v1_header(*ends)
    header, rest = read(data + after, piece)
    assert header == ProxyHeader(1, Command.PROXY, ends[0], ends[1], len(data))
    assert rest == after


@given(
    endpoints(),
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4),
    st.binary(max_size=64),
    st.integers(1, 40),
)
def test_v2_round_trip(
    ends: tuple[tuple[str, int], tuple[str, int]],
    tlvs: list[tuple[int, bytes]],
    after: bytes,
    piece: int,
) -> None:
    data = v2_header(*ends, tlvs=b"".join(tlv(kind, value) for kind, value in tlvs))
    header, rest = read(data + after, piece)
    assert header == ProxyHeader(2, Command.PROXY, ends[0], ends[1], len(data))
    assert rest == after


def _prefixed(data: bytes) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=120).map(lambda tail: data + tail)


@given(
    st.one_of(
        st.binary(max_size=200),
        _prefixed(b"PROXY "),
        _prefixed(b"PROXY TCP4 "),
        _prefixed(b"PROXY TCP6 "),
        _prefixed(V2_SIGNATURE),
        _prefixed(V2_SIGNATURE + b"\x21"),
        _prefixed(V2_SIGNATURE + b"\x21\x11\x00\x0c"),
        _prefixed(V2_SIGNATURE + b"\x21\x21\x00\x24"),
    ),
    st.integers(1, 50),
)
def test_no_input_raises_anything_but_the_readers_error(data: bytes, piece: int) -> None:
    try:
        header, rest = read(data, piece)
    except ProxyHeaderError:
        return
    if header is not None:
        assert data == data[: header.length] + rest
