"""PROXY protocol headers as a load balancer writes them (HAProxy's proxy-protocol.txt §2.1, §2.2).

The server only reads headers; tests write them with these, and the real HAProxy checks that the two
agree (tests/netns)."""

from __future__ import annotations

import ipaddress
import struct

from pysstp.server.proxy import V2_SIGNATURE, Address


def v1_header(source: Address | None, destination: Address | None = None) -> bytes:
    """``PROXY TCP4|TCP6 ...\\r\\n``, or ``PROXY UNKNOWN\\r\\n`` without a source."""
    if source is None:
        return b"PROXY UNKNOWN\r\n"
    destination = destination or (("::1" if ":" in source[0] else "127.0.0.1"), 443)
    protocol = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {protocol} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2_header(
    source: Address | None,
    destination: Address | None = None,
    *,
    local: bool = False,
    tlvs: bytes = b"",
    family_transport: int | None = None,
) -> bytes:
    """The binary header: PROXY (TCP over IPv4/IPv6 from ``source``) or ``local``; ``tlvs`` follow the
    addresses; ``family_transport`` overrides the 14th byte (the address block is then empty)."""
    command = 0x20 | (0x0 if local else 0x1)
    if source is None or family_transport is not None:
        block = b""
        family = family_transport or 0x00
    else:
        destination = destination or (("::1" if ":" in source[0] else "127.0.0.1"), 443)
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        family = 0x11 if src.version == 4 else 0x21
        block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    body = block + tlvs
    return V2_SIGNATURE + bytes((command, family)) + len(body).to_bytes(2, "big") + body


def tlv(kind: int, value: bytes) -> bytes:
    """One type-length-value (§2.2)."""
    return bytes((kind,)) + len(value).to_bytes(2, "big") + value
