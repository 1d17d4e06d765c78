"""Crypto binding: vectors V1-V4 (the [MS-SSTP] §4.7 example, RFC 2759 keys and others), verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.sstp.binding import (
    BindingFailure,
    CryptoBindingError,
    build_call_connected,
    certificate_hash,
    choose_hash,
    cmk,
    compound_mac,
    normalize_hlak,
    verify_call_connected,
)
from pysstp.sstp.constants import HashProtocol
from pysstp.sstp.packets import EchoRequest, encode_control

SHA1, SHA256 = HashProtocol.SHA1, HashProtocol.SHA256
BOTH = SHA1 | SHA256


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# V1: [MS-SSTP] §4.7 example, SHA-256, MS-CHAPv2
V1_NONCE = h("412B489AEBD7ECC7D08966F26BE7CD72B231A0E9210D7C91B308862B0344C435")
V1_CERT = h("7993EF314C493DACE9F02D60E7E61C84B6690AAFE9D7AEEA92CBBE8AD599422D")
V1_HLAK = h("2A1BB40D55AB0F5EF32F06F2B3CC73C4") + h("8FD3FAC41D7A1315A19228D9024CA164")
V1_CMK = h("ECF59AC9FE155CF0A9E7D66ADC1B363C1AD7BA91A9217F0CEC2A534298828DF6")
V1_CMAC = h("52A68EFD8CFFBF52770B8F0FE8EC73716583AF6D611EB6D179B3B20840985449")
V1_PACKET = h("10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 02") + V1_NONCE + V1_CERT + V1_CMAC

# V4: RFC 2759 user "User" / "clientPass" keys
V4_HLAK = h("D5F0E9521E3EA9589645E86051C82226 8B7CDC149B993A1BA118CB153F56DCCB")
V4_NONCE = bytes(range(0x20))


def test_v1_sha256() -> None:
    assert cmk(V1_HLAK, SHA256) == V1_CMK
    assert compound_mac(V1_HLAK, V1_PACKET, SHA256) == V1_CMAC
    assert build_call_connected(V1_HLAK, V1_NONCE, V1_CERT, SHA256) == V1_PACKET
    assert (
        verify_call_connected(
            V1_PACKET, hlak=V1_HLAK, nonce=V1_NONCE, cert_hashes={SHA256: V1_CERT}, offered=BOTH
        )
        is SHA256
    )


def test_v2_sha1() -> None:
    zeroed = h(
        "10010070000400010003006800000001"
        "0F1A2D58D4A3E3000FAD3CE4906E07B707AA9E441CCEAC5CBD7B2CC1C9D86CDF"
        "5826B629BDA59B8E6FD8DCD2622FD34C534805A5000000000000000000000000"
    ) + bytes(32)
    hlak = h("4B3128F43925D9006EEFB1C4E86515A1 D88E56BAB3CA2BDF0373B7F5A8A13B19")
    cmac = h("69915DD583D8062FEF16F61DB2F03290EC27CB6C")
    assert compound_mac(hlak, zeroed, SHA1) == cmac
    packet = build_call_connected(hlak, zeroed[16:48], zeroed[48:68], SHA1)
    assert packet == zeroed[:80] + cmac + bytes(12)
    assert (
        verify_call_connected(
            packet, hlak=hlak, nonce=zeroed[16:48], cert_hashes={SHA1: zeroed[48:68]}, offered=SHA1
        )
        is SHA1
    )


def test_v3_eap_tls_sha256() -> None:
    nonce = h("388A1ECBF302BA02F9F372CE37488EC36B71A28B5E1B19FBE44D5465A631C463")
    cert = h("7FF150176FA8E38A1F402D11FF89FF11B66505AD7F9AE81205277BA4A6B9EF9D")
    msk = h("BB2C17EDBAA643B3D511EB9848792B7CAB5F5D709FE9BDF89B5DEAF5A8C17DB7") + h(
        "6DB2817CDC55AA42C3A1FF3389BE08E2EFFE8B2DC719074A43CFBB8ACF7414CE"
    )
    cmac = h("FE6473C7D183914E483FEA1B12A6E760A4DA16B62FAB12A0A1E54E0EC325B24E")
    # the whole 64-byte MSK goes in: normalize_hlak keeps MSK[0:32]
    assert build_call_connected(msk, nonce, cert, SHA256)[80:] == cmac


V4_SHA256_PACKET = h(
    "10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 02"
    "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F"
    "10 11 12 13 14 15 16 17 18 19 1A 1B 1C 1D 1E 1F"
    "A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 AA AB AC AD AE AF"
    "B0 B1 B2 B3 B4 B5 B6 B7 B8 B9 BA BB BC BD BE BF"
    "FF 09 33 E1 88 BE C9 6D C0 48 0A C0 FF DA 47 8F"
    "4C C4 89 99 62 5D C7 74 D4 CA 9C 19 8E 00 23 97"
)
V4_SHA1_PACKET = (
    h("10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 01")
    + V4_NONCE
    + h("A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 AA AB AC AD AE AF B0 B1 B2 B3")
    + bytes(12)
    + h("A0 9C 66 0C 7F BF F0 96 9B 11 ED 26 BB 57 83 DD 77 E8 FF 3B")
    + bytes(12)
)


V4_CASES = {
    "mschapv2-sha256": (
        SHA256,
        V4_HLAK,
        "150707E682B16F4CA9430560C562894AFD10050DB4182D35C3E9E06284445271",
        "FF0933E188BEC96DC0480AC0FFDA478F4CC48999625DC774D4CA9C198E002397",
    ),
    "mschapv2-sha1": (
        SHA1,
        V4_HLAK,
        "3AFBFF0BA79DD9743BD09949FA99F9D0C92D3698",
        "A09C660C7FBFF0969B11ED26BB5783DD77E8FF3B",
    ),
    "pap-sha256": (
        SHA256,
        bytes(32),
        "D342EB00477D6A37E1A184FB0168CB3EA3B6645FA0F227904D20EEF5CB8F9327",
        "DE0289B26C353C291436BA2785C77D3FECE112222BC47A0D80054DC627C67F34",
    ),
    "pap-sha1": (
        SHA1,
        bytes(32),
        "AE571EDE1E11EFB7BB85B8B4F07E15F0E086761A",
        "E2939C8C9EBC37921DF2BD021C5F4BB9F02CE8BC",
    ),
}


@pytest.mark.parametrize(("proto", "hlak", "cmk_hex", "cmac_hex"), V4_CASES.values(), ids=V4_CASES.keys())
def test_v4(proto: HashProtocol, hlak: bytes, cmk_hex: str, cmac_hex: str) -> None:
    cert = bytes(range(0xA0, 0xC0 if proto is SHA256 else 0xB4))
    assert cmk(hlak, proto) == h(cmk_hex)
    packet = build_call_connected(hlak, V4_NONCE, cert, proto)
    assert packet[80 : 80 + len(h(cmac_hex))] == h(cmac_hex)
    assert (
        verify_call_connected(packet, hlak=hlak, nonce=V4_NONCE, cert_hashes={proto: cert}, offered=BOTH)
        is proto
    )


def test_v4_full_packets() -> None:
    assert build_call_connected(V4_HLAK, V4_NONCE, bytes(range(0xA0, 0xC0)), SHA256) == V4_SHA256_PACKET
    assert build_call_connected(V4_HLAK, V4_NONCE, bytes(range(0xA0, 0xB4)), SHA1) == V4_SHA1_PACKET


def test_appendix_f() -> None:
    cert = bytes(range(0x20, 0x40))
    assert cmk(V4_HLAK, SHA256) == h("150707e682b16f4ca9430560c562894afd10050db4182d35c3e9e06284445271")
    packet = build_call_connected(V4_HLAK, V4_NONCE, cert, SHA256)
    assert packet[:80] == h("10010070000400010003006800000002") + V4_NONCE + cert
    assert packet[80:] == h("4bb35a4d89657bd45cd9c1c233254dcea449a9d4d67bb59db8c6cc0df7de41e9")
    zero = build_call_connected(bytes(32), V4_NONCE, cert, SHA256)
    assert zero[80:] == h("a6a2cfdae87b8d7e02af75ffd4bdb8d61d226b57eee17ea2ad20326bdbc37a81")


def test_certificate_hash_and_hlak_normalisation() -> None:
    der = b"0\x82\x01\x0a" + bytes(100)
    assert certificate_hash(der, SHA1) == hashlib.sha1(der).digest()
    assert certificate_hash(der, SHA256) == hashlib.sha256(der).digest()
    assert normalize_hlak(b"\x01" * 16) == b"\x01" * 16 + bytes(16)
    assert normalize_hlak(bytes(range(64))) == bytes(range(32))
    assert normalize_hlak(b"") == bytes(32)
    assert cmk(b"\x01" * 16, SHA256) == cmk(b"\x01" * 16 + bytes(16), SHA256)
    with pytest.raises(ValueError):
        certificate_hash(der, BOTH)
    with pytest.raises(ValueError):
        compound_mac(V1_HLAK, V1_PACKET[:111], SHA256)
    with pytest.raises(ValueError):
        build_call_connected(V1_HLAK, V1_NONCE, V1_CERT[:20], SHA256)


# ---------------------------------------------------------------------------------------- verification


def _verify(packet: bytes, *, offered: HashProtocol = BOTH, nonce: bytes = V1_NONCE) -> HashProtocol:
    return verify_call_connected(
        packet, hlak=V1_HLAK, nonce=nonce, cert_hashes={SHA256: V1_CERT, SHA1: bytes(20)}, offered=offered
    )


def _fails(packet: bytes, reason: BindingFailure, **kwargs: object) -> None:
    with pytest.raises(CryptoBindingError) as info:
        _verify(packet, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason is reason


def test_verify_failures() -> None:
    _fails(V1_PACKET, BindingFailure.WRONG_NONCE, nonce=bytes(32))
    _fails(V1_PACKET, BindingFailure.HASH_NOT_OFFERED, offered=SHA1)
    wrong_cert = build_call_connected(V1_HLAK, V1_NONCE, bytes(32), SHA256)
    _fails(wrong_cert, BindingFailure.WRONG_CERT_HASH)
    wrong_mac = V1_PACKET[:-1] + bytes((V1_PACKET[-1] ^ 1,))
    _fails(wrong_mac, BindingFailure.BAD_COMPOUND_MAC)
    wrong_key = build_call_connected(bytes(32), V1_NONCE, V1_CERT, SHA256)
    _fails(wrong_key, BindingFailure.BAD_COMPOUND_MAC)
    both_bits = V1_PACKET[:15] + b"\x03" + V1_PACKET[16:]
    _fails(both_bits, BindingFailure.HASH_NOT_OFFERED)
    _fails(V1_PACKET[:100], BindingFailure.MALFORMED)
    _fails(encode_control(EchoRequest()), BindingFailure.MALFORMED)


def test_any_corrupted_byte_fails_verification() -> None:
    for index in range(len(V1_PACKET)):
        corrupted = bytearray(V1_PACKET)
        corrupted[index] ^= 0x40
        with pytest.raises(CryptoBindingError):
            _verify(bytes(corrupted))


def test_sha1_padding_of_the_mac_field_is_not_compared() -> None:
    # accel-ppp compares only the digest-size prefix of the MAC field
    packet = V4_SHA1_PACKET[:100] + b"\xee" * 12
    proto = verify_call_connected(
        packet, hlak=V4_HLAK, nonce=V4_NONCE, cert_hashes={SHA1: bytes(range(0xA0, 0xB4))}, offered=SHA1
    )
    assert proto is SHA1


@pytest.mark.parametrize(
    ("offered", "chosen"), [(BOTH, SHA256), (SHA256, SHA256), (SHA1, SHA1), (HashProtocol(0xFF), SHA256)]
)
def test_choose_hash(offered: HashProtocol, chosen: HashProtocol) -> None:
    assert choose_hash(offered) is chosen


@pytest.mark.parametrize("offered", [0, 0x04, 0xFC])
def test_choose_hash_without_a_known_bit(offered: int) -> None:
    with pytest.raises(CryptoBindingError) as info:
        choose_hash(HashProtocol(offered))
    assert info.value.reason is BindingFailure.HASH_NOT_OFFERED


@given(st.binary(max_size=130))
def test_random_packets_fail_only_with_crypto_binding_error(packet: bytes) -> None:
    with pytest.raises(CryptoBindingError):
        _verify(packet)


@given(
    st.sampled_from([SHA1, SHA256]), st.binary(max_size=80), st.binary(min_size=32, max_size=32), st.binary()
)
def test_build_then_verify(proto: HashProtocol, hlak: bytes, nonce: bytes, der: bytes) -> None:
    digest = certificate_hash(der, proto)
    packet = build_call_connected(hlak, nonce, digest, proto)
    assert len(packet) == 112
    assert (
        verify_call_connected(packet, hlak=hlak, nonce=nonce, cert_hashes={proto: digest}, offered=proto)
        is proto
    )
