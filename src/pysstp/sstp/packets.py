"""SSTP packet codec: control messages as plain data, data packets, and the stream deframer.

Encoding is strict (what the spec says, reserved bits zero, one 12-byte Status Info in every ABORT and
DISCONNECT). Decoding is strict only where the crypto binding and the call set-up depend on exact
structure (CALL_CONNECT_REQUEST, CALL_CONNECT_ACK, CALL_CONNECTED) and lenient for the status-carrying
messages, because real peers get those wrong (docs/interop.md, quirks: SoftEther, accel-ppp, sstpd).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pysstp.errors import DelineationError, SstpError
from pysstp.sstp.constants import (
    ATTRIBUTE_HEADER_LEN,
    CONTROL_BIT,
    CONTROL_HEADER_LEN,
    CRYPTO_BINDING_ATTR_LEN,
    CRYPTO_BINDING_REQ_ATTR_LEN,
    ENCAPSULATED_PROTOCOL_ATTR_LEN,
    ENCAPSULATED_PROTOCOL_PPP,
    HASH_FIELD_LEN,
    HEADER_LEN,
    LENGTH_MASK,
    MAX_DATA_PAYLOAD,
    MAX_PACKET_LEN,
    NONCE_LEN,
    STATUS_INFO_ATTR_LEN,
    STATUS_INFO_SHORT_VALUE_LEN,
    VERSION,
    AttributeId,
    HashProtocol,
    MessageType,
    Status,
)

HEADER = struct.Struct("!BBH")
"""Version, reserved+C byte, reserved+12-bit length."""
CONTROL_HEADER = struct.Struct("!BBHHH")
"""Common header + message type + number of attributes."""
ATTRIBUTE_HEADER = struct.Struct("!BBH")
"""Reserved, attribute id, reserved+12-bit length."""
_STATUS_INFO_BODY = struct.Struct("!3xBI")
_SHORT_STATUS = struct.Struct("!I")
_PROTOCOL_ID = struct.Struct("!H")
_HASH_BYTE = struct.Struct("!3xB")

_DATA_HEADER_BYTES = bytes((VERSION, 0))
_KNOWN_ATTRIBUTES = frozenset(AttributeId)


class SstpPacketError(SstpError):
    """A control packet that cannot be accepted as sent.

    ``status`` and ``attribute_id`` are what a Status Info in the answer (CALL_CONNECT_NAK or CALL_ABORT)
    should carry; ``message_type`` is the type field of the offending packet when it could be read.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: Status = Status.INVALID_FRAME_RECEIVED,
        attribute_id: int = AttributeId.NO_ERROR,
        message_type: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.attribute_id = attribute_id
        self.message_type = message_type


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """SSTP_ATTRIB_STATUS_INFO: which attribute (0 = none in particular) and why, plus the echoed value."""

    attribute_id: int
    status: int
    value: bytes = b""


@dataclass(frozen=True, slots=True)
class CallConnectRequest:
    """SSTP_MSG_CALL_CONNECT_REQUEST (client → server)."""

    protocol_id: int = ENCAPSULATED_PROTOCOL_PPP


@dataclass(frozen=True, slots=True)
class CallConnectAck:
    """SSTP_MSG_CALL_CONNECT_ACK: the hash protocols the server offers (a bitmask) and the 32-byte nonce."""

    hash_protocols: HashProtocol
    nonce: bytes


@dataclass(frozen=True, slots=True)
class CallConnectNak:
    """SSTP_MSG_CALL_CONNECT_NAK: one Status Info per attribute the server did not accept."""

    statuses: tuple[StatusInfo, ...]


@dataclass(frozen=True, slots=True)
class CallConnected:
    """SSTP_MSG_CALL_CONNECTED: the crypto binding.

    ``cert_hash`` and ``compound_mac`` are the whole 32-byte fields (SHA-1 values are zero padded).
    """

    hash_protocol: HashProtocol
    nonce: bytes
    cert_hash: bytes
    compound_mac: bytes


@dataclass(frozen=True, slots=True)
class CallAbort:
    """SSTP_MSG_CALL_ABORT; ``status`` is None when the peer sent no usable Status Info."""

    status: StatusInfo | None = None


@dataclass(frozen=True, slots=True)
class CallDisconnect:
    """SSTP_MSG_CALL_DISCONNECT; ``status`` is None when the peer sent no usable Status Info."""

    status: StatusInfo | None = None


@dataclass(frozen=True, slots=True)
class CallDisconnectAck:
    """SSTP_MSG_CALL_DISCONNECT_ACK."""


@dataclass(frozen=True, slots=True)
class EchoRequest:
    """SSTP_MSG_ECHO_REQUEST (keepalive)."""


@dataclass(frozen=True, slots=True)
class EchoResponse:
    """SSTP_MSG_ECHO_RESPONSE."""


ControlMessage = (
    CallConnectRequest
    | CallConnectAck
    | CallConnectNak
    | CallConnected
    | CallAbort
    | CallDisconnect
    | CallDisconnectAck
    | EchoRequest
    | EchoResponse
)

_NO_ERROR_STATUS = StatusInfo(AttributeId.NO_ERROR, Status.NO_ERROR)


# ---------------------------------------------------------------------------------------------- encoding


def _attribute(attribute_id: int, value: bytes) -> bytes:
    if ATTRIBUTE_HEADER_LEN + len(value) > LENGTH_MASK:
        raise ValueError(f"attribute {attribute_id} value of {len(value)} bytes does not fit")
    return ATTRIBUTE_HEADER.pack(0, attribute_id, ATTRIBUTE_HEADER_LEN + len(value)) + value


def _status_attribute(info: StatusInfo) -> bytes:
    return _attribute(
        AttributeId.STATUS_INFO, _STATUS_INFO_BODY.pack(info.attribute_id, info.status) + info.value
    )


def _control(message_type: MessageType, attributes: list[bytes]) -> bytes:
    body = b"".join(attributes)
    length = CONTROL_HEADER_LEN + len(body)
    if length > MAX_PACKET_LEN:
        raise ValueError(f"{message_type.name} would be {length} bytes, more than {MAX_PACKET_LEN}")
    return CONTROL_HEADER.pack(VERSION, CONTROL_BIT, length, message_type, len(attributes)) + body


def _require_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, not {len(value)}")


def encode_control(msg: ControlMessage) -> bytes:
    """Encode one control message into a whole SSTP packet; raises ValueError for impossible field values."""
    try:
        return _encode_control(msg)
    except struct.error as exc:
        raise ValueError(f"cannot encode {msg!r}: {exc}") from None


def _encode_control(msg: ControlMessage) -> bytes:
    match msg:
        case CallConnectRequest(protocol_id):
            return _control(
                MessageType.CALL_CONNECT_REQUEST,
                [_attribute(AttributeId.ENCAPSULATED_PROTOCOL_ID, _PROTOCOL_ID.pack(protocol_id))],
            )
        case CallConnectAck(hash_protocols, nonce):
            _require_len("nonce", nonce, NONCE_LEN)
            value = _HASH_BYTE.pack(hash_protocols) + nonce
            return _control(MessageType.CALL_CONNECT_ACK, [_attribute(AttributeId.CRYPTO_BINDING_REQ, value)])
        case CallConnectNak(statuses):
            if not statuses:
                raise ValueError("CALL_CONNECT_NAK needs at least one Status Info")
            return _control(MessageType.CALL_CONNECT_NAK, [_status_attribute(s) for s in statuses])
        case CallConnected(hash_protocol, nonce, cert_hash, compound_mac):
            _require_len("nonce", nonce, NONCE_LEN)
            _require_len("cert_hash", cert_hash, HASH_FIELD_LEN)
            _require_len("compound_mac", compound_mac, HASH_FIELD_LEN)
            value = _HASH_BYTE.pack(hash_protocol) + nonce + cert_hash + compound_mac
            return _control(MessageType.CALL_CONNECTED, [_attribute(AttributeId.CRYPTO_BINDING, value)])
        case CallAbort(status):
            return _control(MessageType.CALL_ABORT, [_status_attribute(status or _NO_ERROR_STATUS)])
        case CallDisconnect(status):
            return _control(MessageType.CALL_DISCONNECT, [_status_attribute(status or _NO_ERROR_STATUS)])
        case CallDisconnectAck():
            return _control(MessageType.CALL_DISCONNECT_ACK, [])
        case EchoRequest():
            return _control(MessageType.ECHO_REQUEST, [])
        case EchoResponse():
            return _control(MessageType.ECHO_RESPONSE, [])
    raise TypeError(f"not an SSTP control message: {msg!r}")


def encode_data(ppp_frame: bytes) -> bytes:
    """Wrap one PPP frame (``ff 03`` + protocol + information) into an SSTP data packet."""
    length = HEADER_LEN + len(ppp_frame)
    if length > MAX_PACKET_LEN:
        raise ValueError(
            f"PPP frame of {len(ppp_frame)} bytes exceeds the SSTP maximum of {MAX_DATA_PAYLOAD}"
        )
    return _DATA_HEADER_BYTES + length.to_bytes(2, "big") + ppp_frame


def is_control(packet: bytes) -> bool:
    """True if a whole SSTP packet (as cut by the deframer) is a control packet."""
    return bool(packet[1] & CONTROL_BIT)


# ---------------------------------------------------------------------------------------------- decoding


def _attributes(packet: bytes, count: int, message_type: int, *, strict: bool) -> list[tuple[int, bytes]]:
    """Cut ``count`` attributes after the control header.

    Strict: every attribute must fit and the last must end the packet. Lenient: stop at the first attribute
    that does not fit and ignore trailing bytes (accel-ppp's NAK, sorz's short attributes).
    """
    found: list[tuple[int, bytes]] = []
    pos = CONTROL_HEADER_LEN
    end = len(packet)
    for _ in range(count):
        if end - pos < ATTRIBUTE_HEADER_LEN:
            if strict:
                raise SstpPacketError("attribute header truncated", message_type=message_type)
            break
        _, attribute_id, length = ATTRIBUTE_HEADER.unpack_from(packet, pos)
        length &= LENGTH_MASK
        if length < ATTRIBUTE_HEADER_LEN or length > end - pos:
            if strict:
                raise SstpPacketError(
                    f"attribute {attribute_id} has impossible length {length}",
                    status=Status.INVALID_ATTRIB_VALUE_LENGTH,
                    attribute_id=attribute_id,
                    message_type=message_type,
                )
            break
        found.append((attribute_id, packet[pos + ATTRIBUTE_HEADER_LEN : pos + length]))
        pos += length
    if strict and pos != end:
        raise SstpPacketError(f"{end - pos} bytes after the last attribute", message_type=message_type)
    return found


def _single_attribute(
    packet: bytes, count: int, message_type: MessageType, attribute_id: AttributeId, attribute_len: int
) -> bytes:
    """The value of the one attribute a strict message carries, checked against its exact size."""
    attributes = _attributes(packet, count, message_type, strict=True)
    if not attributes:
        raise SstpPacketError(
            f"{message_type.name} without {attribute_id.name}",
            status=Status.REQUIRED_ATTRIBUTE_MISSING,
            attribute_id=attribute_id,
            message_type=message_type,
        )
    for found_id, _ in attributes:
        if found_id != attribute_id:
            known = found_id in _KNOWN_ATTRIBUTES
            raise SstpPacketError(
                f"attribute {found_id} in {message_type.name}",
                status=Status.ATTRIB_NOT_SUPPORTED_IN_MSG if known else Status.UNRECOGNIZED_ATTRIBUTE,
                attribute_id=found_id,
                message_type=message_type,
            )
    if len(attributes) > 1:
        raise SstpPacketError(
            f"{attribute_id.name} repeated",
            status=Status.DUPLICATE_ATTRIBUTE,
            attribute_id=attribute_id,
            message_type=message_type,
        )
    value = attributes[0][1]
    if ATTRIBUTE_HEADER_LEN + len(value) != attribute_len:
        raise SstpPacketError(
            f"{attribute_id.name} is {ATTRIBUTE_HEADER_LEN + len(value)} bytes, expected {attribute_len}",
            status=Status.INVALID_ATTRIB_VALUE_LENGTH,
            attribute_id=attribute_id,
            message_type=message_type,
        )
    return value


def _lenient_status(value: bytes) -> StatusInfo | None:
    """Read a Status Info value as well as it can be read; None when it cannot."""
    if len(value) >= STATUS_INFO_ATTR_LEN - ATTRIBUTE_HEADER_LEN:
        attribute_id, status = _STATUS_INFO_BODY.unpack_from(value)
        return StatusInfo(attribute_id, status, value[STATUS_INFO_ATTR_LEN - ATTRIBUTE_HEADER_LEN :])
    if len(value) == STATUS_INFO_SHORT_VALUE_LEN:
        # sorz/sstpd: the value is only the Status (its ABORT uses id 2, its DISCONNECT id 0)
        return StatusInfo(AttributeId.NO_ERROR, _SHORT_STATUS.unpack(value)[0])
    return None


def _first_status(packet: bytes, count: int, message_type: int) -> StatusInfo | None:
    for attribute_id, value in _attributes(packet, count, message_type, strict=False):
        if attribute_id in (AttributeId.STATUS_INFO, AttributeId.NO_ERROR):
            status = _lenient_status(value)
            if status is not None:
                return status
    return None


def decode_control(packet: bytes) -> ControlMessage:
    """Decode one whole SSTP control packet (header included), as cut by :class:`Deframer`.

    Raises :class:`SstpPacketError` (an ``SstpError``) whose ``status`` says how to answer.
    """
    if len(packet) < CONTROL_HEADER_LEN:
        raise SstpPacketError(f"control packet of {len(packet)} bytes")
    version, flags, length, message_type, count = CONTROL_HEADER.unpack_from(packet)
    if version != VERSION or not flags & CONTROL_BIT:
        raise SstpPacketError("not an SSTP control packet", message_type=message_type)
    if length & LENGTH_MASK != len(packet):
        raise SstpPacketError(
            f"length field {length & LENGTH_MASK} but packet has {len(packet)} bytes",
            message_type=message_type,
        )
    match message_type:
        case MessageType.CALL_CONNECT_REQUEST:
            value = _single_attribute(
                packet,
                count,
                MessageType.CALL_CONNECT_REQUEST,
                AttributeId.ENCAPSULATED_PROTOCOL_ID,
                ENCAPSULATED_PROTOCOL_ATTR_LEN,
            )
            return CallConnectRequest(_PROTOCOL_ID.unpack(value)[0])
        case MessageType.CALL_CONNECT_ACK:
            value = _single_attribute(
                packet,
                count,
                MessageType.CALL_CONNECT_ACK,
                AttributeId.CRYPTO_BINDING_REQ,
                CRYPTO_BINDING_REQ_ATTR_LEN,
            )
            (mask,) = _HASH_BYTE.unpack_from(value)
            return CallConnectAck(HashProtocol(mask), value[_HASH_BYTE.size :])
        case MessageType.CALL_CONNECT_NAK:
            statuses = tuple(
                status
                for attribute_id, value in _attributes(packet, count, message_type, strict=False)
                if attribute_id == AttributeId.STATUS_INFO and (status := _lenient_status(value)) is not None
            )
            return CallConnectNak(statuses)
        case MessageType.CALL_CONNECTED:
            value = _single_attribute(
                packet, count, MessageType.CALL_CONNECTED, AttributeId.CRYPTO_BINDING, CRYPTO_BINDING_ATTR_LEN
            )
            (proto,) = _HASH_BYTE.unpack_from(value)
            nonce_end = _HASH_BYTE.size + NONCE_LEN
            hash_end = nonce_end + HASH_FIELD_LEN
            return CallConnected(
                HashProtocol(proto),
                value[_HASH_BYTE.size : nonce_end],
                value[nonce_end:hash_end],
                value[hash_end:],
            )
        case MessageType.CALL_ABORT:
            return CallAbort(_first_status(packet, count, message_type))
        case MessageType.CALL_DISCONNECT:
            return CallDisconnect(_first_status(packet, count, message_type))
        case MessageType.CALL_DISCONNECT_ACK:
            return CallDisconnectAck()
        case MessageType.ECHO_REQUEST:
            return EchoRequest()
        case MessageType.ECHO_RESPONSE:
            return EchoResponse()
    raise SstpPacketError(f"unknown message type {message_type:#06x}", message_type=message_type)


# ---------------------------------------------------------------------------------------------- deframing


_DATA_PREFIX = struct.Struct("!HHI")
"""Version and flags as one word, reserved+length, and the first four payload bytes (PPP's ``ff 03`` and
protocol): one unpack classifies a packet on the data path."""
_DATA_HEAD = VERSION << 8
"""Version and flags of a data packet (C bit and reserved bits clear)."""


def _packet_end(source: bytes, pos: int) -> int:
    """Where the packet at ``pos`` ends, or 0 when it is not complete yet; raises
    :class:`DelineationError` if it cannot be an SSTP packet. Needs :data:`HEADER_LEN` bytes at ``pos``."""
    version, flags, length = HEADER.unpack_from(source, pos)
    if version != VERSION:
        raise DelineationError(f"SSTP version byte {version:#04x}")
    length &= LENGTH_MASK
    if length < (CONTROL_HEADER_LEN if flags & CONTROL_BIT else HEADER_LEN):
        raise DelineationError(f"SSTP packet length {length} is below the minimum")
    end = pos + length
    return end if end <= len(source) else 0


class Deframer:
    """Cuts a TLS plaintext byte stream into whole SSTP packets.

    Reads may end anywhere; one call returns every packet completed by it. Only the partial packet at
    the end of a read (< 4095 bytes) is kept, in a bytearray, and joined to the next read once, so every
    byte is copied a bounded number of times. :meth:`feed` cuts packets as ``bytes``; :meth:`split` is the
    data path's single pass, which hands on data payloads as views.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the whole packets (header included) now available.

        Raises :class:`DelineationError` if the stream cannot be SSTP (wrong version, length below the
        minimum); the spec's answer is to close the connection without sending anything.
        """
        return [packet for _, packet in self.split(data, frozenset())[1]]

    def split(self, data: bytes, words: frozenset[int]) -> tuple[list[memoryview], list[tuple[int, bytes]]]:
        """Like :meth:`feed`, in one pass that sets data packets apart: return ``(payloads, others)``.

        ``payloads`` are views of what follows the first four payload bytes of each data packet whose
        first four payload bytes, read as one big-endian word, are in ``words`` (the PPP header of an IP
        packet, for the data path) and that carries more than them. ``others`` are the remaining packets
        whole, each with the number of payloads that came before it in the stream, so a caller can keep
        the order. The views share one immutable buffer, so they stay valid after the next call.
        """
        pending = self._pending
        if pending:
            source = b"".join((pending, data))
            pending.clear()
        else:
            # a caller's bytearray or memoryview may be reused after this call: packets must not alias it
            source = data if type(data) is bytes else bytes(data)
        view = memoryview(source)
        payloads: list[memoryview] = []
        others: list[tuple[int, bytes]] = []
        append = payloads.append
        unpack = _DATA_PREFIX.unpack_from
        prefix = _DATA_PREFIX.size
        data_head = _DATA_HEAD
        pos = 0
        end = len(source)
        while end - pos >= prefix:
            head, length, word = unpack(source, pos)
            length &= LENGTH_MASK
            if head == data_head and word in words and length > prefix:
                packet_end = pos + length
                if packet_end > end:
                    break
                append(view[pos + prefix : packet_end])
            else:
                packet_end = _packet_end(source, pos)
                if not packet_end:
                    break
                others.append((len(payloads), source[pos:packet_end]))
            pos = packet_end
        # Fewer than a prefix left: short packets may still be whole; a partial one waits for the next read.
        while end - pos >= HEADER_LEN and (packet_end := _packet_end(source, pos)):
            others.append((len(payloads), source[pos:packet_end]))
            pos = packet_end
        if pos < end:
            if source[pos] != VERSION:
                raise DelineationError(f"SSTP version byte {source[pos]:#04x}")
            pending += view[pos:]
        return payloads, others
