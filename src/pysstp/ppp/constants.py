"""Every number of PPP that pysstp uses: protocols, codes, option types, auth algorithms, timers."""

from __future__ import annotations

import enum

ADDRESS_CONTROL = b"\xff\x03"
"""Address and control fields; always sent, because SSTP peers (SoftEther, Open-SSTP-Client) require them."""


class Protocol(enum.IntEnum):
    """PPP protocol numbers (assigned numbers, RFC 1661 §2)."""

    IPV4 = 0x0021
    VJ_COMPRESSED_TCP = 0x002D
    VJ_UNCOMPRESSED_TCP = 0x002F
    IPV6 = 0x0057
    IPCP = 0x8021
    IPV6CP = 0x8057
    CCP = 0x80FD
    LCP = 0xC021
    PAP = 0xC023
    LQR = 0xC025
    CBCP = 0xC029
    CHAP = 0xC223
    EAP = 0xC227


def is_control_protocol(protocol: int) -> bool:
    """True for PPP protocols that are link, network or auth control (may pass before SSTP is connected).

    RFC 1661 §2: protocol numbers 0x8000-0xbfff are NCPs, 0xc000-0xffff link-layer control.
    """
    return protocol >= 0x8000


class Code(enum.IntEnum):
    """LCP/NCP packet codes (RFC 1661 §5, RFC 1570)."""

    CONFIGURE_REQUEST = 1
    CONFIGURE_ACK = 2
    CONFIGURE_NAK = 3
    CONFIGURE_REJECT = 4
    TERMINATE_REQUEST = 5
    TERMINATE_ACK = 6
    CODE_REJECT = 7
    PROTOCOL_REJECT = 8
    ECHO_REQUEST = 9
    ECHO_REPLY = 10
    DISCARD_REQUEST = 11
    IDENTIFICATION = 12
    TIME_REMAINING = 13


NCP_CODES = frozenset(range(Code.CONFIGURE_REQUEST, Code.CODE_REJECT + 1))
"""NCPs (IPCP, IPv6CP, CCP) use only codes 1-7."""


class LcpOption(enum.IntEnum):
    """LCP configuration option types (RFC 1661 §6, RFC 1570, RFC 1990)."""

    MRU = 1
    ACCM = 2
    AUTH_PROTOCOL = 3
    QUALITY_PROTOCOL = 4
    MAGIC_NUMBER = 5
    PFC = 7
    ACFC = 8
    CALLBACK = 13
    MRRU = 17
    ENDPOINT_DISCRIMINATOR = 19
    LINK_DISCRIMINATOR = 23


class IpcpOption(enum.IntEnum):
    """IPCP configuration option types (RFC 1332, RFC 1877)."""

    IP_COMPRESSION_PROTOCOL = 2
    IP_ADDRESS = 3
    PRIMARY_DNS = 129
    PRIMARY_NBNS = 130
    SECONDARY_DNS = 131
    SECONDARY_NBNS = 132


class Ipv6cpOption(enum.IntEnum):
    """IPv6CP configuration option types (RFC 5072)."""

    INTERFACE_IDENTIFIER = 1
    IPV6_COMPRESSION_PROTOCOL = 2


class ChapAlgorithm(enum.IntEnum):
    """CHAP algorithm byte of the LCP Authentication-Protocol option."""

    MD5 = 0x05
    MSCHAP = 0x80
    MSCHAP_V2 = 0x81


class AuthMethod(enum.Enum):
    """Authentication methods pysstp can offer (server) or accept (client)."""

    PAP = "pap"
    CHAP_MD5 = "chap"
    MSCHAP_V2 = "mschapv2"
    EAP_MSCHAP_V2 = "eap-mschapv2"
    EAP_MD5 = "eap-md5"
    EAP_TLS = "eap-tls"
    PEAP = "peap"

    @property
    def lcp_value(self) -> bytes:
        """Value of the LCP Authentication-Protocol option that names this method."""
        return _AUTH_OPTION_VALUE[self]

    @classmethod
    def from_lcp_value(cls, value: bytes) -> AuthMethod | None:
        """Map an Authentication-Protocol option value to a method.

        EAP maps to EAP-MSCHAPv2: which EAP method runs is negotiated inside EAP, not in LCP.
        """
        for method, encoded in _AUTH_OPTION_VALUE.items():
            if encoded == value:
                return method
        return None


_AUTH_OPTION_VALUE = {
    AuthMethod.PAP: Protocol.PAP.to_bytes(2, "big"),
    AuthMethod.CHAP_MD5: Protocol.CHAP.to_bytes(2, "big") + bytes([ChapAlgorithm.MD5]),
    AuthMethod.MSCHAP_V2: Protocol.CHAP.to_bytes(2, "big") + bytes([ChapAlgorithm.MSCHAP_V2]),
    AuthMethod.EAP_MSCHAP_V2: Protocol.EAP.to_bytes(2, "big"),
    AuthMethod.EAP_MD5: Protocol.EAP.to_bytes(2, "big"),
    AuthMethod.EAP_TLS: Protocol.EAP.to_bytes(2, "big"),
    AuthMethod.PEAP: Protocol.EAP.to_bytes(2, "big"),
}


class EapCode(enum.IntEnum):
    """EAP packet codes (RFC 3748 §4)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(enum.IntEnum):
    """EAP method types (RFC 3748 §5, IANA)."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    TLS = 13
    TTLS = 21
    PEAP = 25
    MSCHAP_V2 = 26
    EXTENSIONS = 33
    """MS-PEAP 2.2.8: carries the Result and Crypto-Binding TLVs inside the PEAP tunnel."""
    EXPANDED = 254
    """RFC 3748 §5.7: a vendor's type (MS-PEAP's Capabilities Negotiation and SoH methods use it)."""


class Timer(float, enum.Enum):
    """PPP timer values in seconds (RFC 1661 §4.6; auth retransmission)."""

    RESTART = 3.0
    AUTH_RESTART = 3.0


MAX_CONFIGURE = 10
MAX_TERMINATE = 2
MAX_FAILURE = 5
MAX_AUTH_TRANSMITS = 10

DEFAULT_MRU = 1500
MIN_MRU = 576
MAX_MRU = 4091
"""Largest PPP payload that fits an SSTP packet; Windows asks for exactly this."""


class PapCode(enum.IntEnum):
    """PAP packet codes (RFC 1334 §2.2)."""

    AUTHENTICATE_REQUEST = 1
    AUTHENTICATE_ACK = 2
    AUTHENTICATE_NAK = 3


class ChapCode(enum.IntEnum):
    """CHAP packet codes (RFC 1994 §4), shared by CHAP-MD5 and MS-CHAPv2 (RFC 2759 §4)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class MsChapV2OpCode(enum.IntEnum):
    """OpCode of EAP-MSCHAPv2 Type-Data (draft-kamath-pppext-eap-mschapv2 §2)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


class MsChapV2Error(enum.IntEnum):
    """The E= code of an MS-CHAPv2 Failure packet (RFC 2759 §6; the codes are Windows RAS errors)."""

    AUTH_INTERNAL = 645
    """Windows' ERROR_AUTH_INTERNAL: not in RFC 2759's list; sent when the authentication service
    (RADIUS) did not answer, so the client does not blame the password (docs/radius.md)."""
    RESTRICTED_LOGON_HOURS = 646
    ACCT_DISABLED = 647
    PASSWD_EXPIRED = 648
    NO_DIALIN_PERMISSION = 649
    AUTHENTICATION_FAILURE = 691
    CHANGING_PASSWORD = 709


CHAP_CHALLENGE_SIZE = 16
"""Bytes of challenge our authenticators send (CHAP-MD5, EAP-MD5; fixed at 16 for MS-CHAPv2)."""
MSCHAPV2_CHALLENGE_SIZE = 16
"""Value-Size of an MS-CHAPv2 Challenge: the AuthenticatorChallenge (RFC 2759 §4)."""
MSCHAPV2_RESPONSE_SIZE = 49
"""Value-Size of an MS-CHAPv2 Response: PeerChallenge(16), Reserved(8), NT-Response(24), Flags(1)."""
MSCHAPV2_VERSION = 3
"""V= of an MS-CHAPv2 Failure packet (RFC 2759 §6)."""
HLAK_SIZE = 32
"""Bytes of the SSTP Higher-Layer Authentication Key (MS-SSTP §3.2.5.2)."""


class Phase(enum.Enum):
    """PPP link phases (RFC 1661 §3.2)."""

    DEAD = "dead"
    ESTABLISH = "establish"
    AUTHENTICATE = "authenticate"
    NETWORK = "network"
    TERMINATE = "terminate"


class Role(enum.Enum):
    """Which end of the call this PPP stack is: the client dials and is authenticated by the server."""

    CLIENT = "client"
    SERVER = "server"


CONTROL_HEADER_SIZE = 4
"""Code, Identifier and Length of an LCP/NCP packet (RFC 1661 §5)."""

OPTION_HEADER_SIZE = 2
"""Type and Length of a configuration option (RFC 1661 §6)."""

MAGIC_NUMBER_SIZE = 4
"""Magic-Number option value and the magic field of LCP Echo/Discard/Identification packets."""

PROTOCOL_FIELD_SIZE = 2
"""Uncompressed protocol field; also the Rejected-Protocol field of a Protocol-Reject."""

INTERFACE_IDENTIFIER_SIZE = 8
"""IPv6CP Interface-Identifier (RFC 5072 §4.1)."""

IPV4_ADDRESS_SIZE = 4

# RFC 1662 asynchronous HDLC-like framing (only on sstpc's stdio; SSTP itself carries bare frames).
HDLC_FLAG = 0x7E
HDLC_ESCAPE = 0x7D
HDLC_ESCAPE_XOR = 0x20
HDLC_DEFAULT_ACCM = 0xFFFFFFFF
"""Async-Control-Character-Map that escapes every control character (RFC 1662 §7.1 default)."""
FCS16_INIT = 0xFFFF
FCS16_GOOD = 0xF0B8
"""FCS-16 computed over a frame including its own (correct) FCS (RFC 1662 §C.2)."""
FCS16_POLYNOMIAL = 0x8408
"""x**0 + x**5 + x**12 + x**16, bit-reversed (RFC 1662 §C.2)."""
FCS16_SIZE = 2
