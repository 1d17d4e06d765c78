"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-I/O.

A load balancer in front of the server opens a TCP connection per client and puts, before the client's
first byte, one header saying whom it speaks for. :class:`ProxyHeaderReader` takes the connection's first
bytes in as many pieces as they arrive and says how many of each piece belong to the header, so that the
listener can take exactly the header off the socket and leave the client's TLS (or plain SSTP) to the
rest of the server. Version 2's TLVs are skipped: nothing here needs them.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from dataclasses import dataclass

from pysstp.errors import ProtocolError

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
"""The longest version 1 line with its CRLF (proxy-protocol.txt §2.1: "PROXY UNKNOWN" and two IPv6
addresses and ports)."""

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16
"""Signature, version and command, family and transport, address length (§2.2)."""
V2_VERSION = 0x2
V2_MAX_ADDRESS_LENGTH = 4096
"""The most bytes accepted after the fixed part: addresses (216 at most, for AF_UNIX) and TLVs. The
16-bit length field would allow 64 KiB, which no sender needs; a peer announcing more is not a proxy."""

_V1_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")
_V1_IPV4 = re.compile(rb"[0-9.]{7,15}")
_V1_IPV6 = re.compile(rb"[0-9A-Fa-f:]{2,39}|::[Ff]{4}:[0-9.]{7,15}")
"""Canonical IPv6, or an IPv4-mapped address with its IPv4 part dotted, as inet_ntop writes it: HAProxy
bound to ``:::443 v4v6`` sends that for every IPv4 client, although §2.1 names only the hex form."""
_V2_TCP = {0x11: struct.Struct("!4s4sHH"), 0x21: struct.Struct("!16s16sHH")}
"""The address blocks of TCP over IPv4 and over IPv6, by the 14th byte (§2.2)."""


class ProxyHeaderError(ProtocolError):
    """The connection does not start with a valid PROXY protocol header."""


class NotProxyHeader(ProxyHeaderError):
    """The first bytes are neither version 1's ``PROXY`` nor version 2's signature."""


class ProxyHeaderTooLong(ProxyHeaderError):
    """No end of the header within the limit (107 bytes for version 1, see :data:`V2_MAX_ADDRESS_LENGTH`)."""


class MalformedProxyHeader(ProxyHeaderError):
    """A header that starts right but breaks the rules of its version."""


class Command(enum.Enum):
    """What the sender says the connection is (§2.2; a version 1 header is always ``PROXY``)."""

    LOCAL = 0x0
    """The proxy's own connection (its health checks): the real endpoints are the true ones."""
    PROXY = 0x1
    """On behalf of a client: the header's addresses are the true ones."""


Address = tuple[str, int]
"""Host and port, as ``getpeername`` gives them for TCP."""


@dataclass(frozen=True)
class ProxyHeader:
    """One decoded header; ``source`` is ``None`` when the real endpoints count (LOCAL, version 1's
    UNKNOWN, or a version 2 family or transport other than TCP over IPv4/IPv6)."""

    version: int
    command: Command
    source: Address | None = None
    destination: Address | None = None
    length: int = 0
    """Bytes the header took on the wire."""


class ProxyHeaderReader:
    """Reads one header from a connection's first bytes, given in any number of pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.header: ProxyHeader | None = None
        """The header, once all of it has been fed."""

    def feed(self, data: bytes) -> int:
        """Take the next bytes of the connection; return how many of them belong to the header (all of
        them while it is incomplete). Raises a :class:`ProxyHeaderError` as soon as the bytes cannot be a
        header; after the header is complete, it takes nothing more."""
        if self.header is not None:
            return 0
        start = len(self._buffer)
        self._buffer += data
        end = self._v2_end() if self._buffer[:1] == V2_SIGNATURE[:1] else self._v1_end(start)
        if end is None:
            return len(data)
        line = bytes(self._buffer[:end])
        self.header = _decode_v2(line) if line.startswith(V2_SIGNATURE) else _decode_v1(line)
        return end - start

    def _v1_end(self, start: int) -> int | None:
        buffer = self._buffer
        prefix = min(len(buffer), len(V1_PREFIX))
        if buffer[:prefix] != V1_PREFIX[:prefix]:
            raise NotProxyHeader("not a PROXY protocol header")
        # A CR that ended the previous piece may be followed by this piece's LF.
        crlf = buffer.find(b"\r\n", max(start - 1, 0), V1_MAX_LENGTH)
        if crlf >= 0:
            return crlf + 2
        if len(buffer) >= V1_MAX_LENGTH:
            raise ProxyHeaderTooLong(f"no CRLF in the first {V1_MAX_LENGTH} bytes of a version 1 header")
        if b"\n" in buffer or b"\r" in buffer[:-1]:
            raise MalformedProxyHeader("a lone CR or LF in a version 1 header")
        return None

    def _v2_end(self) -> int | None:
        buffer = self._buffer
        prefix = min(len(buffer), len(V2_SIGNATURE))
        if buffer[:prefix] != V2_SIGNATURE[:prefix]:
            raise NotProxyHeader("not a PROXY protocol header")
        if len(buffer) < V2_FIXED_LENGTH:
            return None
        version, command = buffer[12] >> 4, buffer[12] & 0x0F
        if version != V2_VERSION:
            raise MalformedProxyHeader(f"version {version} after the version 2 signature")
        if command not in (c.value for c in Command):
            raise MalformedProxyHeader(f"unknown command {command:#x}")
        family, transport = buffer[13] >> 4, buffer[13] & 0x0F
        # §2.2: families and transports beyond these "must be rejected as invalid by receivers".
        if family > 0x3 or transport > 0x2:
            raise MalformedProxyHeader(f"unknown address family and transport {buffer[13]:#04x}")
        length = int.from_bytes(buffer[14:16], "big")
        if length > V2_MAX_ADDRESS_LENGTH:
            raise ProxyHeaderTooLong(f"a version 2 header announcing {length} bytes of addresses and TLVs")
        end = V2_FIXED_LENGTH + length
        return end if len(buffer) >= end else None


def _decode_v1(line: bytes) -> ProxyHeader:
    """``PROXY TCP4|TCP6 SRC DST SPORT DPORT`` or ``PROXY UNKNOWN ...``, with its CRLF (§2.1)."""
    fields = line[:-2].split(b" ")
    if fields[1:2] == [b"UNKNOWN"]:
        # "the receiver must ignore anything presented before the CRLF is found"
        return ProxyHeader(1, Command.PROXY, length=len(line))
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise MalformedProxyHeader("a version 1 header is 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'")
    _, protocol, source, destination, source_port, destination_port = fields
    return ProxyHeader(
        1,
        Command.PROXY,
        source=(_v1_address(protocol, source), _v1_port(source_port)),
        destination=(_v1_address(protocol, destination), _v1_port(destination_port)),
        length=len(line),
    )


def _v1_address(protocol: bytes, text: bytes) -> str:
    # Only the canonical forms (§2.1), and IPv4-mapped ones (see _V1_IPV6): no zone index, no leading
    # zeros (which ipaddress refuses in IPv4).
    pattern, kind = (
        (_V1_IPV4, ipaddress.IPv4Address) if protocol == b"TCP4" else (_V1_IPV6, ipaddress.IPv6Address)
    )
    try:
        if pattern.fullmatch(text) is None:
            raise ValueError
        return _host(kind(text.decode("ascii")))
    except ValueError:
        raise MalformedProxyHeader(f"{text!r} is not an {protocol.decode()} address") from None


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as the server keys clients by it: an IPv4-mapped IPv6 address (a proxy listening on a
    dual-stack socket) as the IPv4 address it is, so that one client has one source for the login
    back-off, the per-source rate and RADIUS, whichever way the proxy reached it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _v1_port(text: bytes) -> int:
    if _V1_PORT.fullmatch(text) is None or int(text) > 0xFFFF:
        raise MalformedProxyHeader(f"{text!r} is not a port")
    return int(text)


def _decode_v2(header: bytes) -> ProxyHeader:
    """The fixed part was checked while reading; here the address block is read (§2.2)."""
    command = Command(header[12] & 0x0F)
    length = len(header)
    if command is Command.LOCAL:
        # "must use the real connection endpoints and discard the protocol block including the family"
        return ProxyHeader(2, command, length=length)
    block = header[V2_FIXED_LENGTH:]
    layout = _V2_TCP.get(header[13])
    if layout is None:
        # UNSPEC, UDP and AF_UNIX: §2.2 lets a receiver fall back to the real endpoints.
        return ProxyHeader(2, command, length=length)
    if len(block) < layout.size:
        raise MalformedProxyHeader(
            f"{len(block)} bytes of addresses, too few for family and transport {header[13]:#04x}"
        )
    source, destination, source_port, destination_port = layout.unpack_from(block)
    return ProxyHeader(
        2,
        command,
        source=(_host(ipaddress.ip_address(source)), source_port),
        destination=(_host(ipaddress.ip_address(destination)), destination_port),
        length=length,
    )
