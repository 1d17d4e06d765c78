"""Every number of [MS-SSTP] in one place: versions, message types, attributes, status values, timers."""

from __future__ import annotations

import enum

VERSION = 0x10
"""Version byte of every SSTP packet: major 1, minor 0."""

HEADER_LEN = 4
MAX_PACKET_LEN = 0x0FFF
"""The length field has 12 bits and counts the whole packet, header included."""
MAX_DATA_PAYLOAD = MAX_PACKET_LEN - HEADER_LEN
CONTROL_HEADER_LEN = 8
"""SSTP header + message type (16) + attribute count (16)."""
ATTRIBUTE_HEADER_LEN = 4
LENGTH_MASK = 0x0FFF
CONTROL_BIT = 0x01

NONCE_LEN = 32
HASH_FIELD_LEN = 32
"""Certificate hash and compound MAC fields are always 32 bytes; SHA-1 values are zero padded."""
HLAK_LEN = 32
CALL_CONNECTED_LEN = 112
COMPOUND_MAC_OFFSET = 80
"""Offset of the compound MAC inside the 112-byte CALL_CONNECTED packet."""

ENCAPSULATED_PROTOCOL_PPP = 0x0001

CMK_SEED = b"SSTP inner method derived CMK"


class MessageType(enum.IntEnum):
    """SSTP control message types ([MS-SSTP] §2.2.9)."""

    CALL_CONNECT_REQUEST = 0x0001
    CALL_CONNECT_ACK = 0x0002
    CALL_CONNECT_NAK = 0x0003
    CALL_CONNECTED = 0x0004
    CALL_ABORT = 0x0005
    CALL_DISCONNECT = 0x0006
    CALL_DISCONNECT_ACK = 0x0007
    ECHO_REQUEST = 0x0008
    ECHO_RESPONSE = 0x0009


class AttributeId(enum.IntEnum):
    """SSTP attribute identifiers ([MS-SSTP] §2.2.10)."""

    NO_ERROR = 0x00
    ENCAPSULATED_PROTOCOL_ID = 0x01
    STATUS_INFO = 0x02
    CRYPTO_BINDING = 0x03
    CRYPTO_BINDING_REQ = 0x04


class Status(enum.IntEnum):
    """Values of the Status field of a Status Info attribute."""

    NO_ERROR = 0x00000000
    DUPLICATE_ATTRIBUTE = 0x00000001
    UNRECOGNIZED_ATTRIBUTE = 0x00000002
    INVALID_ATTRIB_VALUE_LENGTH = 0x00000003
    VALUE_NOT_SUPPORTED = 0x00000004
    UNACCEPTED_FRAME_RECEIVED = 0x00000005
    RETRY_COUNT_EXCEEDED = 0x00000006
    INVALID_FRAME_RECEIVED = 0x00000007
    NEGOTIATION_TIMEOUT = 0x00000008
    ATTRIB_NOT_SUPPORTED_IN_MSG = 0x00000009
    REQUIRED_ATTRIBUTE_MISSING = 0x0000000A
    STATUS_INFO_NOT_SUPPORTED_IN_MSG = 0x0000000B


class HashProtocol(enum.IntFlag):
    """Certificate hash protocols: a bitmask in CALL_CONNECT_ACK, one value in CALL_CONNECTED."""

    SHA1 = 0x01
    SHA256 = 0x02


HASH_DIGEST_LEN = {HashProtocol.SHA1: 20, HashProtocol.SHA256: 32}


class Timer(float, enum.Enum):
    """Timer values in seconds ([MS-SSTP] §3.1.2, §3.2.2, §3.3.2)."""

    HTTP_RESPONSE = 60.0
    NEGOTIATION = 60.0
    HELLO = 60.0
    ABORT_1 = 3.0
    ABORT_2 = 1.0
    DISCONNECT_1 = 5.0
    DISCONNECT_2 = 1.0


MAX_CONNECT_NAKS = 3
"""CALL_CONNECT_NAKs a server sends (and a client tolerates) before the call is aborted."""

# HTTP layer ([MS-SSTP] §4.1)
HTTP_METHOD = "SSTP_DUPLEX_POST"
HTTP_URI = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
HTTP_CONTENT_LENGTH = "18446744073709551615"
HTTP_SERVER_NAME = "Microsoft-HTTPAPI/2.0"
HTTP_MAX_HEAD = 8192
HTTP_MAX_LINE = 2048
HTTP_MAX_HEADERS = 64

# Fixed attribute and message sizes ([MS-SSTP] §2.2.9-2.2.11); strict messages must match them exactly.
ENCAPSULATED_PROTOCOL_ATTR_LEN = 6
CRYPTO_BINDING_REQ_ATTR_LEN = 40
CRYPTO_BINDING_ATTR_LEN = 104
STATUS_INFO_ATTR_LEN = 12
"""Status Info without an AttribValue: header, 3 reserved bytes, AttribID, 4-byte Status."""
STATUS_INFO_SHORT_VALUE_LEN = 4
"""sorz/sstpd puts only the 4-byte Status into the attribute value (no reserved bytes, no AttribID)."""

CMK_COUNTER = 0x01
"""The single PRF+ iteration counter byte that ends the CMK derivation input."""

# PPP facts the SSTP layer needs to gate frames before CALL_CONNECTED (sstp/ must not import ppp/).
PPP_ADDRESS_CONTROL = b"\xff\x03"
PPP_CONTROL_PROTOCOL_MIN = 0x8000
"""RFC 1661 §2: protocols 0x8000-0xffff are NCP, link and auth control; below are data (IP, ...)."""

HTTP_VERSION = "HTTP/1.1"
HTTP_CORRELATION_HEADER = "SSTPCORRELATIONID"
