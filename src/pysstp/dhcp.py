"""DHCPv4 messages as a PPP client and server use them: DHCPINFORM and its DHCPACK (RFC 2131 §3.4, §4.3.5).

After IPCP has given it an address, Windows' VPN client asks for the rest of its configuration with a
DHCPINFORM through the tunnel (MS-DHCPE 2.2.6.1: user class "RRAS.Microsoft"); the answer carries the
split-tunnel routes (option 121, RFC 3442, and Microsoft's copy 249, MS-DHCPE 2.2.8), the DNS suffix
(option 15) and name servers. This module reads and writes those messages (BOOTP fixed part, magic
cookie, options, RFC 2132) and the classless route encoding; no sockets (the IPv4/UDP around it is
:mod:`pysstp.udp`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network

from pysstp.errors import ProtocolError

UNSPECIFIED = IPv4Address(0)
"""0.0.0.0: an address field left empty."""

SERVER_PORT = 67
CLIENT_PORT = 68
BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
MAGIC_COOKIE = b"\x63\x82\x53\x63"
"""RFC 2131 §3: the first four bytes of the options field."""
FIXED_LEN = 236
"""op .. file: the BOOTP part before the magic cookie (RFC 2131 §2, figure 1)."""
CHADDR_LEN = 16
MIN_MESSAGE_LEN = 300
"""BOOTP's minimum message (RFC 1542 §2.1): short replies are padded, as every DHCP server does."""
RRAS_USER_CLASS = b"RRAS.Microsoft"
"""The user class Windows sends on dial-up and VPN interfaces, as plain bytes without RFC 3004's inner
length (MS-DHCPE 2.2.6.1)."""
MAX_OPTION_LEN = 255


class DhcpError(ProtocolError):
    """A malformed DHCP message or option."""


class MessageType(IntEnum):
    """Option 53 (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(IntEnum):
    """The option codes pysstp reads or writes (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOST_NAME = 12
    DOMAIN_NAME = 15
    NETBIOS_NAME_SERVERS = 44
    """WINS servers."""
    MESSAGE_TYPE = 53
    SERVER_IDENTIFIER = 54
    PARAMETER_REQUEST_LIST = 55
    MAX_MESSAGE_SIZE = 57
    VENDOR_CLASS = 60
    CLIENT_IDENTIFIER = 61
    USER_CLASS = 77
    """RFC 3004; Windows sends the bare string (MS-DHCPE 2.2.6.1)."""
    CLASSLESS_ROUTES = 121
    """RFC 3442."""
    MS_CLASSLESS_ROUTES = 249
    """MS-DHCPE 2.2.8: the same format as 121."""
    END = 255


WINDOWS_PARAMETER_REQUEST = bytes(
    (
        Option.SUBNET_MASK,
        Option.DOMAIN_NAME,
        Option.ROUTER,
        Option.DNS_SERVERS,
        Option.NETBIOS_NAME_SERVERS,
        46,  # NetBIOS node type
        47,  # NetBIOS scope
        31,  # perform router discovery
        33,  # static routes
        Option.CLASSLESS_ROUTES,
        Option.MS_CLASSLESS_ROUTES,
        43,  # vendor-specific
    )
)
"""The parameter request list of a Windows DHCP client (the order Windows 10/11 sends)."""
WINDOWS_VENDOR_CLASS = b"MSFT 5.0"
"""Option 60 of Windows 2000 and later (MS-DHCPM 3.1.1.8's built-in vendor class)."""


@dataclass(frozen=True, slots=True)
class ClasslessRoute:
    """One route of option 121/249: a destination network and the router to it (0.0.0.0: on-link)."""

    network: IPv4Network
    router: IPv4Address


@dataclass(frozen=True, slots=True)
class Message:
    """A DHCP message: the BOOTP fields and the options in the order they came (RFC 2131 §2)."""

    op: int
    xid: int
    ciaddr: IPv4Address = UNSPECIFIED
    yiaddr: IPv4Address = UNSPECIFIED
    siaddr: IPv4Address = UNSPECIFIED
    giaddr: IPv4Address = UNSPECIFIED
    chaddr: bytes = bytes(CHADDR_LEN)
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    options: tuple[tuple[int, bytes], ...] = field(default=())
    """(code, value) pairs; a long value is one pair here and split on the wire (RFC 3396)."""

    def option(self, code: int) -> bytes | None:
        """The value of option ``code``, or ``None`` if the message has none."""
        for number, value in self.options:
            if number == code:
                return value
        return None

    @property
    def message_type(self) -> MessageType | None:
        """Option 53, or ``None`` when it is missing (plain BOOTP) or unknown."""
        value = self.option(Option.MESSAGE_TYPE)
        if value is None or len(value) != 1 or value[0] not in MessageType._value2member_map_:
            return None
        return MessageType(value[0])


# -- the wire --------------------------------------------------------------------------------------


_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")


def parse(data: bytes | memoryview) -> Message:
    """Read one DHCP message. Options that occur more than once are joined (RFC 3396 §7)."""
    data = bytes(data)
    if len(data) < FIXED_LEN + len(MAGIC_COOKIE):
        raise DhcpError(f"{len(data)} bytes: too short for a DHCP message")
    op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _, _ = (
        _FIXED.unpack_from(data)
    )
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise DhcpError(f"BOOTP op {op} is neither request nor reply")
    if hlen > CHADDR_LEN:
        raise DhcpError(f"hardware address length {hlen} exceeds {CHADDR_LEN}")
    if data[FIXED_LEN : FIXED_LEN + 4] != MAGIC_COOKIE:
        raise DhcpError("no DHCP magic cookie")
    return Message(
        op=op,
        xid=xid,
        ciaddr=IPv4Address(ciaddr),
        yiaddr=IPv4Address(yiaddr),
        siaddr=IPv4Address(siaddr),
        giaddr=IPv4Address(giaddr),
        chaddr=chaddr,
        htype=htype,
        hlen=hlen,
        hops=hops,
        secs=secs,
        flags=flags,
        options=_parse_options(data[FIXED_LEN + 4 :]),
    )


def _parse_options(data: bytes) -> tuple[tuple[int, bytes], ...]:
    values: dict[int, bytes] = {}
    position = 0
    while position < len(data):
        code = data[position]
        if code == Option.END:
            return tuple(values.items())
        if code == Option.PAD:
            position += 1
            continue
        if position + 2 > len(data) or position + 2 + data[position + 1] > len(data):
            raise DhcpError(f"option {code} runs past the end of the message")
        length = data[position + 1]
        values[code] = values.get(code, b"") + data[position + 2 : position + 2 + length]
        position += 2 + length
    raise DhcpError("the options have no end option")


def build(message: Message) -> bytes:
    """The message on the wire: options in order, long ones split (RFC 3396), end option, padded to 300
    bytes."""
    if len(message.chaddr) != CHADDR_LEN:
        raise ValueError(f"chaddr must be {CHADDR_LEN} bytes, not {len(message.chaddr)}")
    fixed = _FIXED.pack(
        message.op,
        message.htype,
        message.hlen,
        message.hops,
        message.xid,
        message.secs,
        message.flags,
        message.ciaddr.packed,
        message.yiaddr.packed,
        message.siaddr.packed,
        message.giaddr.packed,
        message.chaddr,
        b"",
        b"",
    )
    parts = [fixed, MAGIC_COOKIE]
    for code, value in message.options:
        if not 0 < code < Option.END:
            raise ValueError(f"option code {code} cannot carry a value")
        for start in range(0, max(len(value), 1), MAX_OPTION_LEN):
            chunk = value[start : start + MAX_OPTION_LEN]
            parts.append(bytes((code, len(chunk))) + chunk)
    parts.append(bytes((Option.END,)))
    wire = b"".join(parts)
    return wire + bytes(max(0, MIN_MESSAGE_LEN - len(wire)))


# -- option values ---------------------------------------------------------------------------------


def encode_addresses(addresses: Iterable[IPv4Address]) -> bytes:
    """A list of IPv4 addresses (options 3, 6, 44, 54)."""
    return b"".join(address.packed for address in addresses)


def decode_addresses(value: bytes, code: int) -> tuple[IPv4Address, ...]:
    """The addresses of option ``code``: at least one, four bytes each."""
    if not value or len(value) % 4:
        raise DhcpError(f"option {code}: {len(value)} bytes is not a list of IPv4 addresses")
    return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))


def encode_classless_routes(routes: Iterable[ClasslessRoute]) -> bytes:
    """Option 121/249's value: per route the prefix length, the significant octets of the destination,
    then the router (RFC 3442 §3)."""
    parts = []
    for route in routes:
        width = route.network.prefixlen
        parts.append(bytes((width,)) + route.network.network_address.packed[: (width + 7) // 8])
        parts.append(route.router.packed)
    return b"".join(parts)


def decode_classless_routes(value: bytes) -> tuple[ClasslessRoute, ...]:
    """The routes of an option 121/249 value (RFC 3442 §3). Destination bits beyond the prefix length
    are an error, as a network with host bits would be."""
    routes = []
    position = 0
    while position < len(value):
        width = value[position]
        if width > 32:
            raise DhcpError(f"classless route: prefix length {width} exceeds 32")
        significant = (width + 7) // 8
        end = position + 1 + significant + 4
        if end > len(value):
            raise DhcpError("classless route: the option ends inside a route")
        destination = value[position + 1 : position + 1 + significant] + bytes(4 - significant)
        try:
            network = IPv4Network((destination, width))
        except ValueError:
            raise DhcpError(
                f"classless route: {IPv4Address(destination)}/{width} has bits beyond its prefix"
            ) from None
        routes.append(ClasslessRoute(network, IPv4Address(value[end - 4 : end])))
        position = end
    return tuple(routes)


def encode_text(text: str) -> bytes:
    """An NVT ASCII option value (option 15, RFC 2132 §3.17)."""
    return text.encode("ascii")


def domain_name(text: str) -> str:
    """``text`` if it can be option 15's DNS suffix: ASCII letters, digits and hyphens in dot-separated
    labels of 1-63 characters, 253 at most (RFC 1035 §2.3.1, §2.3.4); else :class:`ValueError`."""
    name = text.rstrip(".")
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or any(not 0 < len(label) < 64 or not _LABEL.fullmatch(label) for label in labels)
    ):
        raise ValueError(f"{text!r} is not a domain name such as corp.example")
    return name


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def decode_text(value: bytes, code: int) -> str:
    """An NVT ASCII option value; a trailing NUL (some servers send one) is dropped (RFC 2132 §2)."""
    try:
        text = value.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError:
        raise DhcpError(f"option {code} is not ASCII text") from None
    if not text.isprintable():
        raise DhcpError(f"option {code} holds control characters")
    return text


# -- DHCPINFORM and its DHCPACK --------------------------------------------------------------------


def windows_inform(xid: int, ciaddr: IPv4Address, hardware_address: bytes, host_name: str = "") -> Message:
    """A DHCPINFORM as Windows' VPN client sends it through the tunnel (RFC 2131 §4.4.3: ciaddr set, no
    requested address or lease time; MS-DHCPE 2.2.6.1: user class "RRAS.Microsoft")."""
    if len(hardware_address) != 6:
        raise ValueError("the hardware address must have 6 bytes")
    options: list[tuple[int, bytes]] = [
        (Option.MESSAGE_TYPE, bytes((MessageType.INFORM,))),
        (Option.CLIENT_IDENTIFIER, bytes((HTYPE_ETHERNET,)) + hardware_address),
    ]
    if host_name:
        options.append((Option.HOST_NAME, encode_text(host_name)))
    options += [
        (Option.VENDOR_CLASS, WINDOWS_VENDOR_CLASS),
        (Option.USER_CLASS, RRAS_USER_CLASS),
        (Option.PARAMETER_REQUEST_LIST, WINDOWS_PARAMETER_REQUEST),
    ]
    return Message(
        op=BOOTREQUEST,
        xid=xid,
        ciaddr=ciaddr,
        chaddr=hardware_address + bytes(CHADDR_LEN - 6),
        options=tuple(options),
    )


@dataclass(frozen=True, slots=True)
class Configuration:
    """What a DHCPACK to an INFORM tells the client (and what the server's answer carries)."""

    server: IPv4Address
    """Option 54: the server identifier."""
    netmask: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain: str = ""
    wins: tuple[IPv4Address, ...] = ()
    routes: tuple[ClasslessRoute, ...] = ()
    """Option 121, else option 249 (RFC 3442 §3: 121 wins; MS-DHCPE 2.2.8)."""


def ack(inform: Message, configuration: Configuration) -> Message:
    """The DHCPACK to ``inform`` (RFC 2131 §4.3.5, table 3): xid, ciaddr, chaddr, flags and giaddr
    echoed, yiaddr 0, no lease time; routes in both 121 and 249, since Windows reads 249 (MS-DHCPE
    2.2.8)."""
    options: list[tuple[int, bytes]] = [
        (Option.MESSAGE_TYPE, bytes((MessageType.ACK,))),
        (Option.SERVER_IDENTIFIER, configuration.server.packed),
    ]
    if configuration.netmask is not None:
        options.append((Option.SUBNET_MASK, configuration.netmask.packed))
    if configuration.dns:
        options.append((Option.DNS_SERVERS, encode_addresses(configuration.dns)))
    if configuration.domain:
        options.append((Option.DOMAIN_NAME, encode_text(configuration.domain)))
    if configuration.wins:
        options.append((Option.NETBIOS_NAME_SERVERS, encode_addresses(configuration.wins)))
    if configuration.routes:
        routes = encode_classless_routes(configuration.routes)
        options += [(Option.CLASSLESS_ROUTES, routes), (Option.MS_CLASSLESS_ROUTES, routes)]
    return Message(
        op=BOOTREPLY,
        xid=inform.xid,
        ciaddr=inform.ciaddr,
        giaddr=inform.giaddr,
        chaddr=inform.chaddr,
        htype=inform.htype,
        hlen=inform.hlen,
        flags=inform.flags,
        options=tuple(options),
    )


def configuration(message: Message) -> Configuration:
    """Read a DHCPACK's options. Raises :class:`DhcpError` if it is not a DHCPACK from a server or an
    option it uses is malformed."""
    if message.op != BOOTREPLY or message.message_type is not MessageType.ACK:
        raise DhcpError("not a DHCPACK")
    server = message.option(Option.SERVER_IDENTIFIER)
    if server is None:
        raise DhcpError("the DHCPACK has no server identifier (option 54)")
    netmask = message.option(Option.SUBNET_MASK)
    domain = message.option(Option.DOMAIN_NAME)
    routes = message.option(Option.CLASSLESS_ROUTES)
    if routes is None:
        routes = message.option(Option.MS_CLASSLESS_ROUTES)
    return Configuration(
        server=_one_address(server, Option.SERVER_IDENTIFIER),
        netmask=_one_address(netmask, Option.SUBNET_MASK) if netmask is not None else None,
        dns=_addresses(message, Option.DNS_SERVERS),
        domain=decode_text(domain, Option.DOMAIN_NAME) if domain else "",
        wins=_addresses(message, Option.NETBIOS_NAME_SERVERS),
        routes=decode_classless_routes(routes) if routes is not None else (),
    )


def _one_address(value: bytes, code: int) -> IPv4Address:
    if len(value) != 4:
        raise DhcpError(f"option {code}: {len(value)} bytes is not one IPv4 address")
    return IPv4Address(value)


def _addresses(message: Message, code: int) -> tuple[IPv4Address, ...]:
    value = message.option(code)
    return decode_addresses(value, code) if value is not None else ()


def routes_via(networks: Sequence[IPv4Network], router: IPv4Address) -> tuple[ClasslessRoute, ...]:
    """Classless routes to ``networks`` through ``router``."""
    return tuple(ClasslessRoute(network, router) for network in networks)
