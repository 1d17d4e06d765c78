"""Key derivation from an authentication: MPPE master keys (RFC 3079 §3) and the SSTP HLAK.

SSTP never runs MPPE; these keys exist only to feed the crypto binding (MS-SSTP §3.2.5.2). The HLAK is
32 bytes: client MasterSendKey ‖ client MasterReceiveKey, which is server MasterReceiveKey ‖ server
MasterSendKey, so both ends compute the same bytes. Methods without keys (PAP, CHAP-MD5, EAP-MD5) use zeros.
"""

from __future__ import annotations

import hashlib
import hmac

from pysstp.ppp.auth.mschapv2 import hash_nt_password_hash
from pysstp.ppp.constants import HLAK_SIZE

ZERO_HLAK = bytes(HLAK_SIZE)
"""HLAK of methods that derive no keys (PAP, CHAP-MD5, EAP-MD5, no authentication)."""

MASTER_KEY_SIZE = 16
"""128-bit keys; the HLAK always uses this length, whatever MPPE would have negotiated."""
EAP_MSK_SIZE = 64
"""RFC 3748 §7.10: an MSK is at least 64 bytes."""

_MASTER_MAGIC = b"This is the MPPE Master Key"
_SEND_MAGIC_CLIENT = b"On the client side, this is the send key; on the server side, it is the receive key."
_RECEIVE_MAGIC_CLIENT = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4): 16 bytes from HashNtPasswordHash and the NT-Response."""
    return hashlib.sha1(password_hash_hash + nt_response + _MASTER_MAGIC).digest()[:MASTER_KEY_SIZE]


def asymmetric_start_key(master_key: bytes, is_send: bool, is_server: bool) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 §3.4), 128-bit.

    The client's send key is the server's receive key (Magic2), and the other way round (Magic3). Note
    that RFC 3079 §3.5.3's "SendStartKey128" sample is the *server's* send key.
    """
    magic = _SEND_MAGIC_CLIENT if is_send != is_server else _RECEIVE_MAGIC_CLIENT
    return hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:MASTER_KEY_SIZE]


def mschapv2_hlak(password_hash: bytes, nt_response: bytes) -> bytes:
    """The HLAK of an MS-CHAPv2 login: client MasterSendKey ‖ client MasterReceiveKey (both ends alike)."""
    key = master_key(hash_nt_password_hash(password_hash), nt_response)
    return asymmetric_start_key(key, is_send=True, is_server=False) + asymmetric_start_key(
        key, is_send=False, is_server=False
    )


def eap_mschapv2_msk(password_hash: bytes, nt_response: bytes) -> bytes:
    """The EAP-MSCHAPv2 MSK: peer MasterSendKey ‖ peer MasterReceiveKey, zero-padded to 64 bytes.

    hostapd's layout ("MSK = server MS-MPPE-Recv-Key | MS-MPPE-Send-Key"); the padding follows RFC 3748's
    64-byte minimum. Its first 32 bytes are the HLAK, the same as for plain MS-CHAPv2.
    """
    return mschapv2_hlak(password_hash, nt_response).ljust(EAP_MSK_SIZE, b"\0")


def hlak_from_key_material(material: bytes) -> bytes:
    """MS-SSTP's length rule: use the first 32 bytes, or pad shorter key material with zeros."""
    return material[:HLAK_SIZE].ljust(HLAK_SIZE, b"\0")


PEAP_TUNNEL_KEY_LABEL = b"client EAP encryption"
"""MS-PEAP 3.1.5.5.2.1: the Tunnel Key is the EAP-TLS key material of the outer handshake."""
PEAP_TUNNEL_KEY_SIZE = 60
_PEAP_TEMP_KEY_SIZE = 40
_PEAP_ISK_SIZE = 32
_PEAP_IPMK_SIZE = 40
_PEAP_CMK_SIZE = 20
_PEAP_IPMK_LABEL = b"Inner Methods Compound Keys"
_PEAP_CSK_LABEL = b"Session Key Generating Function\x00"
"""MS-PEAP 3.1.5.7: this label, unlike the IPMK's, ends with a NUL byte."""
_PEAP_CSK_SIZE = 128


def peap_prf_plus(key: bytes, seed: bytes, size: int) -> bytes:
    """MS-PEAP 3.1.5.5.2.2's PRF+: T1 = HMAC-SHA1(K, S | 0x01 | 0x00 | 0x00), Tn = HMAC-SHA1(K, Tn-1 | S |
    n | 0x00 | 0x00), concatenated and cut to ``size`` bytes."""
    output, block, counter = b"", b"", 0
    while len(output) < size:
        counter += 1
        block = hmac.new(key, block + seed + bytes([counter, 0, 0]), hashlib.sha1).digest()
        output += block
    return output[:size]


def peap_compound_keys(tunnel_key: bytes, inner_session_key: bytes) -> tuple[bytes, bytes]:
    """IPMK and CMK (MS-PEAP 3.1.5.5.2.2): PRF+ keyed with the Tunnel Key's first 40 bytes over the label
    and the inner method's 32-byte ISK (zero-padded)."""
    isk = inner_session_key[:_PEAP_ISK_SIZE].ljust(_PEAP_ISK_SIZE, b"\0")
    imck = peap_prf_plus(
        tunnel_key[:_PEAP_TEMP_KEY_SIZE], _PEAP_IPMK_LABEL + isk, _PEAP_IPMK_SIZE + _PEAP_CMK_SIZE
    )
    return imck[:_PEAP_IPMK_SIZE], imck[_PEAP_IPMK_SIZE:]


def peap_msk(ipmk: bytes) -> bytes:
    """The MSK of a PEAP login whose Crypto-Binding TLVs were exchanged: the first 64 bytes of the
    Compound Session Key, PRF+(IPMK, "Session Key Generating Function\\0", 128) (MS-PEAP 3.1.5.7). Its
    first 32 bytes (the peer's MS-MPPE-Send-Key) are the HLAK, as for EAP-TLS."""
    return peap_prf_plus(ipmk, _PEAP_CSK_LABEL, _PEAP_CSK_SIZE)[:EAP_MSK_SIZE]
