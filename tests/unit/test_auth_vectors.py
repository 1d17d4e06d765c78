"""Published vectors: RFC 2759 §9.2, RFC 3079 §3.5, reference V4, CHAP-MD5, PAP and MS-CHAPv2 wire bytes."""

from __future__ import annotations

import hashlib

from Crypto.Cipher import DES
from Crypto.Hash import MD4
from hypothesis import given
from hypothesis import strategies as st

from pysstp.ppp.auth.chap import ChapPacket, MsChapV2Peer, chap_md5_response
from pysstp.ppp.auth.keys import (
    ZERO_HLAK,
    asymmetric_start_key,
    eap_mschapv2_msk,
    hlak_from_key_material,
    master_key,
    mschapv2_hlak,
)
from pysstp.ppp.auth.mschapv2 import (
    MsChapV2Response,
    challenge_hash,
    challenge_response,
    check_authenticator_response,
    describe_error,
    format_failure,
    generate_authenticator_response,
    generate_nt_response,
    hash_nt_password_hash,
    nt_password_hash,
    parse_failure,
    success_text,
)
from pysstp.ppp.auth.pap import PapPeer
from pysstp.ppp.constants import ChapCode, MsChapV2Error, Protocol

from helpers.auth_wire import fixed_bytes

# RFC 2759 §9.2 / RFC 3079 §3.5
USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE_HASH = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
CLIENT_SEND = bytes.fromhex("D5F0E9521E3EA9589645E86051C82226")
CLIENT_RECEIVE = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
RFC3079_SEND_START_KEY_128 = CLIENT_RECEIVE  # the RFC's sample is the server's send key
RFC3079_SESSION_KEY_128 = bytes.fromhex("405CB2247A7956E6E211007AE27B22D4")


def test_pycryptodome_primitives() -> None:
    assert MD4.new(b"abc").hexdigest() == "a448017aaf21d8525fc10ae87aa6729d"
    des = DES.new(bytes.fromhex("0123456789ABCDEF"), DES.MODE_ECB)
    assert des.encrypt(b"Now is t").hex().upper() == "3FA40E8A984D4815"


def test_rfc2759_intermediate_values() -> None:
    assert nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE_HASH
    assert challenge_response(CHALLENGE_HASH, PASSWORD_HASH) == NT_RESPONSE
    assert generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD_HASH) == NT_RESPONSE
    assert (
        generate_authenticator_response(PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
        == AUTHENTICATOR_RESPONSE
    )


def test_challenge_hash_strips_through_last_backslash() -> None:
    for name in ("DOMAIN\\User", "a\\b\\User", "\\User"):
        assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, name) == CHALLENGE_HASH
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "User\\") != CHALLENGE_HASH


def test_check_authenticator_response() -> None:
    args = (PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert check_authenticator_response(*args, AUTHENTICATOR_RESPONSE)
    assert check_authenticator_response(*args, AUTHENTICATOR_RESPONSE.lower())
    assert check_authenticator_response(*args, AUTHENTICATOR_RESPONSE + " M=Welcome")
    assert not check_authenticator_response(*args, AUTHENTICATOR_RESPONSE[:-1] + "7")
    assert not check_authenticator_response(*args, AUTHENTICATOR_RESPONSE[:-1])
    assert not check_authenticator_response(*args, "")
    assert not check_authenticator_response(*args, "S=\u00e9" * 20)


def test_rfc3079_keys_and_the_send_key_trap() -> None:
    assert master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY
    assert asymmetric_start_key(MASTER_KEY, is_send=True, is_server=False) == CLIENT_SEND
    assert asymmetric_start_key(MASTER_KEY, is_send=False, is_server=False) == CLIENT_RECEIVE
    assert asymmetric_start_key(MASTER_KEY, is_send=True, is_server=True) == RFC3079_SEND_START_KEY_128
    assert asymmetric_start_key(MASTER_KEY, is_send=False, is_server=True) == CLIENT_SEND
    # RFC 3079 §3.5.3 derives its session key from the server send key; that proves which key it is.
    start = RFC3079_SEND_START_KEY_128
    session = hashlib.sha1(start + bytes(40) + start + b"\xf2" * 40).digest()[:16]
    assert session == RFC3079_SESSION_KEY_128


def test_reference_v4_hlak() -> None:
    hlak = mschapv2_hlak(PASSWORD_HASH, NT_RESPONSE)
    assert hlak == CLIENT_SEND + CLIENT_RECEIVE
    assert hlak.hex() == "d5f0e9521e3ea9589645e86051c822268b7cdc149b993a1ba118cb153f56dccb"
    msk = eap_mschapv2_msk(PASSWORD_HASH, NT_RESPONSE)
    assert len(msk) == 64
    assert msk[:32] == hlak
    assert hlak_from_key_material(msk) == hlak
    assert bytes(32) == ZERO_HLAK
    assert hlak_from_key_material(b"\x01" * 16) == b"\x01" * 16 + bytes(16)


def test_chap_md5_vector() -> None:
    assert (
        chap_md5_response(1, b"secret", bytes(range(16))).hex().upper() == "740E86463BDA3A4D7017D6E0FBA0699D"
    )


def test_pap_example_bytes() -> None:
    peer = PapPeer("user", "pass", random_bytes=fixed_bytes(b"\x03"))
    peer.start(0.0)
    assert peer.take_outgoing() == [
        (Protocol.PAP, bytes.fromhex("01 03 00 0E 04 75 73 65 72 04 70 61 73 73"))
    ]


def test_rfc2759_response_frame_from_a_peer() -> None:
    peer = MsChapV2Peer(USER, PASSWORD, random_bytes=fixed_bytes(PEER_CHALLENGE))
    peer.start(0.0)
    peer.receive(ChapPacket.with_value(ChapCode.CHALLENGE, 1, AUTH_CHALLENGE, "server").encode(), 0.0)
    expected = bytes.fromhex(
        "02 01 00 3A 31"
        "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"
        "00 00 00 00 00 00 00 00"
        "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF"
        "00"
        "55 73 65 72"
    )
    assert peer.take_outgoing() == [(Protocol.CHAP, expected)]
    peer.receive(ChapPacket.with_message(ChapCode.SUCCESS, 1, AUTHENTICATOR_RESPONSE).encode(), 0.0)
    [event] = peer.take_events()
    assert event.hlak == CLIENT_SEND + CLIENT_RECEIVE  # type: ignore[union-attr]


def test_response_value_codec() -> None:
    value = MsChapV2Response(PEER_CHALLENGE, NT_RESPONSE).encode()
    assert len(value) == 49
    assert MsChapV2Response.decode(value) == MsChapV2Response(PEER_CHALLENGE, NT_RESPONSE, 0)


def test_failure_messages_from_real_servers() -> None:
    challenge = bytes(range(16))
    softether = parse_failure(f"E=691 R=0 C={challenge.hex()} V=3")
    assert (softether.error, softether.retry, softether.challenge, softether.version) == (
        691,
        False,
        challenge,
        3,
    )
    assert softether.message == ""
    accel = parse_failure("E=691 R=0 V=3 M=Authentication failed")
    assert (accel.error, accel.challenge, accel.message) == (691, None, "Authentication failed")
    shuffled = parse_failure(f"M=go away now V=3 E=648 C={challenge.hex().upper()}")
    assert (shuffled.error, shuffled.message) == (None, "go away now V=3 E=648 C=" + challenge.hex().upper())
    reordered = parse_failure(f"V=3 C={challenge.hex().upper()} R=1 E=648 M=expired")
    assert (reordered.error, reordered.retry, reordered.challenge, reordered.message) == (
        648,
        True,
        challenge,
        "expired",
    )
    bad = parse_failure("E=abc R= C=zz V=")
    assert bad == parse_failure("")
    ours = format_failure(MsChapV2Error.AUTHENTICATION_FAILURE, challenge, "Access denied")
    assert ours == f"E=691 R=0 C={challenge.hex().upper()} V=3 M=Access denied"
    assert parse_failure(ours).message == "Access denied"
    assert describe_error(691) == "wrong user name or password (E=691)"
    assert describe_error(None) == "server refused authentication (no error code)"
    assert describe_error(1234) == "server refused authentication (E=1234)"
    assert success_text(AUTHENTICATOR_RESPONSE) == ""
    assert success_text(AUTHENTICATOR_RESPONSE + " M=Welcome home") == "Welcome home"


@given(st.text(max_size=40), st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_authenticator_response_round_trip(
    password: str, auth_challenge: bytes, peer_challenge: bytes
) -> None:
    password_hash = nt_password_hash(
        password.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    )
    nt_response = generate_nt_response(auth_challenge, peer_challenge, "dom\\u", password_hash)
    assert len(nt_response) == 24
    s = generate_authenticator_response(password_hash, nt_response, peer_challenge, auth_challenge, "u")
    assert len(s) == 42 and s.startswith("S=") and s[2:] == s[2:].upper()
    assert check_authenticator_response(password_hash, nt_response, peer_challenge, auth_challenge, "x\\u", s)


@given(st.text(max_size=200))
def test_parse_failure_takes_any_text(text: str) -> None:
    parse_failure(text)
