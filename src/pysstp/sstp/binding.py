"""Crypto binding ([MS-SSTP] §3.2.5.2): certificate hash, CMK, compound MAC, CALL_CONNECTED.

The client proves that the PPP authentication (through the HLAK derived from it) and the TLS session
(through the hash of the certificate it saw) belong together; the server checks every part of it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping

from pysstp.errors import SstpError
from pysstp.sstp.constants import (
    CALL_CONNECTED_LEN,
    CMK_COUNTER,
    CMK_SEED,
    COMPOUND_MAC_OFFSET,
    HASH_DIGEST_LEN,
    HASH_FIELD_LEN,
    HLAK_LEN,
    NONCE_LEN,
    HashProtocol,
)
from pysstp.sstp.packets import CallConnected, SstpPacketError, decode_control, encode_control

_HASH_NAMES = {HashProtocol.SHA1: "sha1", HashProtocol.SHA256: "sha256"}


class BindingFailure(enum.StrEnum):
    """Which check of a received CALL_CONNECTED failed; ``str()`` gives a readable phrase for logs."""

    MALFORMED = "malformed CALL_CONNECTED"
    HASH_NOT_OFFERED = "hash protocol not offered"
    WRONG_NONCE = "wrong nonce"
    WRONG_CERT_HASH = "wrong certificate hash"
    BAD_COMPOUND_MAC = "bad compound MAC"


class CryptoBindingError(SstpError):
    """The crypto binding cannot be built or does not verify; ``reason`` says which check failed."""

    def __init__(self, reason: BindingFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


def _hash_name(proto: HashProtocol) -> str:
    try:
        return _HASH_NAMES[proto]
    except KeyError:
        raise ValueError(f"{proto!r} is not a single certificate hash protocol") from None


def certificate_hash(der: bytes, proto: HashProtocol) -> bytes:
    """Hash of the DER-encoded leaf server certificate (the raw 20- or 32-byte digest)."""
    return hashlib.new(_hash_name(proto), der).digest()


def certificate_hashes(der: bytes) -> dict[HashProtocol, bytes]:
    """The hashes of a DER-encoded leaf certificate for every hash protocol, as a server checks them."""
    return {proto: certificate_hash(der, proto) for proto in _HASH_NAMES}


def normalize_hlak(key: bytes) -> bytes:
    """The HLAK is exactly 32 bytes: longer key material is truncated, shorter is padded with zeros."""
    return key[:HLAK_LEN].ljust(HLAK_LEN, b"\0")


def cmk(hlak: bytes, proto: HashProtocol) -> bytes:
    """Compound MAC Key: T1 of the PRF+ expansion of the HLAK (the length is little-endian, §5.5)."""
    name = _hash_name(proto)
    seed = CMK_SEED + HASH_DIGEST_LEN[proto].to_bytes(2, "little") + bytes((CMK_COUNTER,))
    return hmac.digest(normalize_hlak(hlak), seed, name)


def compound_mac(hlak: bytes, call_connected: bytes, proto: HashProtocol) -> bytes:
    """HMAC over the whole 112-byte CALL_CONNECTED with its MAC field (bytes 80..111) zeroed."""
    if len(call_connected) != CALL_CONNECTED_LEN:
        raise ValueError(f"CALL_CONNECTED must be {CALL_CONNECTED_LEN} bytes, not {len(call_connected)}")
    message = bytes(call_connected[:COMPOUND_MAC_OFFSET]) + bytes(HASH_FIELD_LEN)
    return hmac.digest(cmk(hlak, proto), message, _hash_name(proto))


def build_call_connected(hlak: bytes, nonce: bytes, cert_hash_digest: bytes, proto: HashProtocol) -> bytes:
    """The client's 112-byte CALL_CONNECTED packet, compound MAC included."""
    if len(cert_hash_digest) != HASH_DIGEST_LEN[proto]:
        raise ValueError(f"{proto.name} certificate hash must be {HASH_DIGEST_LEN[proto]} bytes")
    unsigned = encode_control(
        CallConnected(proto, nonce, cert_hash_digest.ljust(HASH_FIELD_LEN, b"\0"), bytes(HASH_FIELD_LEN))
    )
    mac = compound_mac(hlak, unsigned, proto)
    return unsigned[:COMPOUND_MAC_OFFSET] + mac.ljust(HASH_FIELD_LEN, b"\0")


def verify_call_connected(
    packet: bytes,
    *,
    hlak: bytes,
    nonce: bytes,
    cert_hashes: Mapping[HashProtocol, bytes],
    offered: HashProtocol,
) -> HashProtocol:
    """Check a received CALL_CONNECTED as the server must (§3.3.5.2.3); return the hash protocol used.

    ``cert_hashes`` maps each hash protocol to the digest of the server's certificate. Only the first
    digest-size bytes of the hash and MAC fields are compared (as accel-ppp does), in constant time.
    Raises :class:`CryptoBindingError`.
    """
    try:
        msg = decode_control(packet)
    except SstpPacketError as exc:
        raise CryptoBindingError(BindingFailure.MALFORMED, str(exc)) from None
    if not isinstance(msg, CallConnected):
        raise CryptoBindingError(BindingFailure.MALFORMED, f"got {type(msg).__name__}")
    proto = msg.hash_protocol
    if proto not in _HASH_NAMES or not proto & offered or proto not in cert_hashes:
        raise CryptoBindingError(BindingFailure.HASH_NOT_OFFERED, f"hash protocol {int(proto):#04x}")
    size = HASH_DIGEST_LEN[proto]
    if len(nonce) != NONCE_LEN or not hmac.compare_digest(msg.nonce, nonce):
        raise CryptoBindingError(BindingFailure.WRONG_NONCE)
    if not hmac.compare_digest(msg.cert_hash[:size], cert_hashes[proto][:size]):
        raise CryptoBindingError(BindingFailure.WRONG_CERT_HASH)
    if not hmac.compare_digest(msg.compound_mac[:size], compound_mac(hlak, packet, proto)):
        raise CryptoBindingError(BindingFailure.BAD_COMPOUND_MAC)
    return proto


def choose_hash(offered: HashProtocol) -> HashProtocol:
    """The client's choice from the server's bitmask: SHA-256 when offered, else SHA-1 (§3.2.5.3.2)."""
    if offered & HashProtocol.SHA256:
        return HashProtocol.SHA256
    if offered & HashProtocol.SHA1:
        return HashProtocol.SHA1
    raise CryptoBindingError(BindingFailure.HASH_NOT_OFFERED, f"bitmask {int(offered):#04x}")
