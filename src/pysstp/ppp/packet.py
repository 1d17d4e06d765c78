"""Codec of the packet format shared by LCP, IPCP, IPv6CP and CCP (RFC 1661 §5) and of option lists (§6)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pysstp.errors import PppError
from pysstp.ppp.constants import CONTROL_HEADER_SIZE, OPTION_HEADER_SIZE

_LENGTH_SIZE = 2
_MAX_OPTION_VALUE = 0xFF - OPTION_HEADER_SIZE


def join_packet(code: int, identifier: int, data: bytes) -> bytes:
    """Code, Identifier, Length and data: the header every PPP control and auth protocol shares."""
    length = CONTROL_HEADER_SIZE + len(data)
    return bytes((code, identifier)) + length.to_bytes(_LENGTH_SIZE, "big") + data


def split_packet(packet: bytes, name: str, error: type[PppError] = PppError) -> tuple[int, int, bytes]:
    """(Code, Identifier, data) of a packet with the shared 4-byte header (LCP, NCPs, PAP, CHAP, EAP).

    Octets beyond Length are padding and ignored (RFC 1661 §5). Raises ``error`` (naming the protocol
    ``name``) when the packet is shorter than its header, or Length is below 4 or past the end.
    """
    if len(packet) < CONTROL_HEADER_SIZE:
        raise error(f"{name} packet of {len(packet)} bytes is shorter than its header")
    length = int.from_bytes(packet[2:CONTROL_HEADER_SIZE], "big")
    if length < CONTROL_HEADER_SIZE or length > len(packet):
        raise error(f"{name} packet Length {length} does not fit {len(packet)} received bytes")
    return packet[0], packet[1], bytes(packet[CONTROL_HEADER_SIZE:length])


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One control packet: Code, Identifier, and the data after the 4-byte header."""

    code: int
    identifier: int
    data: bytes = b""

    def encode(self) -> bytes:
        """Return the packet with its Length field (header included)."""
        return join_packet(self.code, self.identifier, self.data)

    @classmethod
    def decode(cls, packet: bytes) -> ControlPacket:
        """Parse a packet (the PPP information field).

        Octets beyond Length are padding and ignored (RFC 1661 §5). Raises :class:`PppError` when the packet
        is shorter than its header, or Length is below 4 or beyond the end of ``packet``.
        """
        return cls(*split_packet(packet, "control"))


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration option: Type and Value (the Length field is implied by the value)."""

    type: int
    value: bytes = b""

    def encode(self) -> bytes:
        """Return Type, Length, Value."""
        if len(self.value) > _MAX_OPTION_VALUE:
            raise ValueError(f"option {self.type} value of {len(self.value)} bytes does not fit")
        return bytes((self.type, OPTION_HEADER_SIZE + len(self.value))) + self.value


def encode_options(options: Iterable[Option]) -> bytes:
    """Concatenate encoded options."""
    return b"".join(option.encode() for option in options)


def decode_options(data: bytes) -> list[Option]:
    """Parse an option list; raises :class:`PppError` on an option Length below 2 or past the end."""
    options = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < OPTION_HEADER_SIZE:
            raise PppError(f"option list ends inside an option header at offset {offset}")
        option_type, length = data[offset], data[offset + 1]
        if length < OPTION_HEADER_SIZE or offset + length > len(data):
            raise PppError(f"option {option_type} has invalid Length {length} at offset {offset}")
        options.append(Option(option_type, bytes(data[offset + OPTION_HEADER_SIZE : offset + length])))
        offset += length
    return options
