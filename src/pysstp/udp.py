"""UDP in IPv4 as whole packets on a tunnel: build one, read one (RFC 791, RFC 768), and the Internet
checksum both use (RFC 1071).

Used where pysstp itself speaks UDP inside a session, without a socket: the server's DHCPINFORM responder
and the client's DHCPINFORM (:mod:`pysstp.dhcp`). Pure functions on bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from pysstp.errors import ProtocolError

IPV4_HEADER_LEN = 20
UDP_HEADER_LEN = 8
PROTOCOL_UDP = 17
DEFAULT_TTL = 64
BROADCAST = IPv4Address("255.255.255.255")
_MORE_FRAGMENTS = 0x2000
_FRAGMENT_OFFSET = 0x1FFF


class DatagramError(ProtocolError):
    """An IPv4 packet that is not one whole, intact UDP datagram."""


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement of the one's complement sum (RFC 1071), as carried in the header."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram and the IPv4 addresses around it."""

    source: IPv4Address
    destination: IPv4Address
    source_port: int
    destination_port: int
    payload: bytes


def _udp_pseudo_header(source: bytes, destination: bytes, length: int) -> bytes:
    """What the UDP checksum covers besides the datagram itself (RFC 768)."""
    return source + destination + struct.pack("!xBH", PROTOCOL_UDP, length)


def build(datagram: Datagram, ttl: int = DEFAULT_TTL) -> bytes:
    """A complete IPv4 packet (no options, not fragmented) carrying ``datagram``, both checksums set."""
    source, destination = datagram.source.packed, datagram.destination.packed
    length = UDP_HEADER_LEN + len(datagram.payload)
    udp = struct.pack("!HHHH", datagram.source_port, datagram.destination_port, length, 0) + datagram.payload
    # A computed 0 is sent as all ones: 0 means "no checksum" (RFC 768).
    checksum = internet_checksum(_udp_pseudo_header(source, destination, length) + udp) or 0xFFFF
    udp = udp[:6] + checksum.to_bytes(2, "big") + udp[8:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, IPV4_HEADER_LEN + length, 0, 0, ttl, PROTOCOL_UDP, 0, source, destination
    )
    header = header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]
    return header + udp


def destination_port(packet: bytes | memoryview) -> int | None:
    """The UDP destination port of an IPv4 ``packet`` known to carry UDP, without checking anything else;
    ``None`` if it has none to read (a later fragment, or too short)."""
    header_len = (packet[0] & 0x0F) * 4
    if int.from_bytes(packet[6:8], "big") & _FRAGMENT_OFFSET or len(packet) < header_len + UDP_HEADER_LEN:
        return None
    return int.from_bytes(packet[header_len + 2 : header_len + 4], "big")


def parse(packet: bytes | memoryview) -> Datagram:
    """The UDP datagram in an IPv4 ``packet``, its checksums verified (a zero UDP checksum means none).

    Raises :class:`DatagramError` for anything else: not IPv4, not UDP, a fragment, truncated, or a bad
    checksum.
    """
    data = bytes(packet)
    if len(data) < IPV4_HEADER_LEN or data[0] >> 4 != 4:
        raise DatagramError("not an IPv4 packet")
    header_len = (data[0] & 0x0F) * 4
    total_len = int.from_bytes(data[2:4], "big")
    if header_len < IPV4_HEADER_LEN or total_len < header_len + UDP_HEADER_LEN or total_len > len(data):
        raise DatagramError(f"IPv4 lengths do not fit: header {header_len}, total {total_len}, {len(data)}")
    if data[9] != PROTOCOL_UDP:
        raise DatagramError(f"IPv4 protocol {data[9]}, not UDP")
    if int.from_bytes(data[6:8], "big") & (_MORE_FRAGMENTS | _FRAGMENT_OFFSET):
        raise DatagramError("an IPv4 fragment")
    if internet_checksum(data[:header_len]) != 0:
        raise DatagramError("bad IPv4 header checksum")
    udp = data[header_len:total_len]
    source_port, destination_port, length, checksum = struct.unpack_from("!HHHH", udp)
    if length < UDP_HEADER_LEN or length > len(udp):
        raise DatagramError(f"UDP length {length} does not fit the {len(udp)} bytes after the IPv4 header")
    udp = udp[:length]
    if checksum and internet_checksum(_udp_pseudo_header(data[12:16], data[16:20], length) + udp) != 0:
        raise DatagramError("bad UDP checksum")
    return Datagram(
        IPv4Address(data[12:16]),
        IPv4Address(data[16:20]),
        source_port,
        destination_port,
        udp[UDP_HEADER_LEN:],
    )
