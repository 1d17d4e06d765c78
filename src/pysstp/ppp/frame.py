"""PPP frame codec: address/control and protocol fields around a packet (RFC 1661 §2, RFC 1662 §3).

SSTP carries one bare PPP frame per data packet (no flags, no FCS). We always send the full form
``ff 03`` + 2-byte protocol, because SoftEther and Open-SSTP-Client drop anything else, and we accept the
compressed forms (ACFC, PFC) that pppd-based peers may send.
"""

from __future__ import annotations

from pysstp.errors import PppError
from pysstp.ppp.constants import ADDRESS_CONTROL, PROTOCOL_FIELD_SIZE, Protocol

IPV4_PREFIX = ADDRESS_CONTROL + Protocol.IPV4.to_bytes(PROTOCOL_FIELD_SIZE, "big")
"""The first four bytes of every IPv4 frame we send; the data path frames packets with it directly."""

IPV6_PREFIX = ADDRESS_CONTROL + Protocol.IPV6.to_bytes(PROTOCOL_FIELD_SIZE, "big")
"""The first four bytes of every IPv6 frame we send."""


def encode_frame(protocol: int, packet: bytes) -> bytes:
    """Return ``ff 03`` + the 2-byte protocol + ``packet``."""
    return ADDRESS_CONTROL + protocol.to_bytes(PROTOCOL_FIELD_SIZE, "big") + packet


def decode_frame(frame: bytes) -> tuple[int, bytes]:
    """Split a PPP frame into (protocol, information field).

    Accepts a missing ``ff 03`` (Address-and-Control-Field-Compression) and a 1-byte protocol field
    (Protocol-Field-Compression: the first protocol byte is odd). Raises :class:`PppError` when the frame
    is empty, truncated or has another address/control pair. A protocol number that breaks RFC 1661 §2's
    rules (an even low octet) is returned as it is: such frames "MUST be treated as having an unrecognized
    Protocol", which the session answers with LCP Protocol-Reject.
    """
    if frame.startswith(IPV4_PREFIX):  # the common case, checked first because it is the data path
        return Protocol.IPV4, frame[len(IPV4_PREFIX) :]
    offset = 0
    if frame[:1] == ADDRESS_CONTROL[:1]:
        # A protocol field never starts with 0xff (its high byte is even), so 0xff is the address field.
        if frame[: len(ADDRESS_CONTROL)] != ADDRESS_CONTROL:
            raise PppError(f"PPP frame has address/control {frame[:2].hex(' ')}, expected ff 03")
        offset = len(ADDRESS_CONTROL)
    if len(frame) <= offset:
        raise PppError("PPP frame has no protocol field")
    first = frame[offset]
    if first & 1:
        return first, frame[offset + 1 :]
    if len(frame) < offset + PROTOCOL_FIELD_SIZE:
        raise PppError("PPP frame ends inside its protocol field")
    return first << 8 | frame[offset + 1], frame[offset + PROTOCOL_FIELD_SIZE :]
