"""PPP frame codec: full form out, compressed forms in, PppError on garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.errors import PppError
from pysstp.ppp.constants import Protocol
from pysstp.ppp.frame import IPV4_PREFIX, IPV6_PREFIX, decode_frame, encode_frame

# RFC 1661 §2: the low byte of a protocol number is odd, the high byte even.
protocols = st.builds(
    lambda high, low: (high << 9) | (low << 1) | 1, st.integers(0, 127), st.integers(0, 127)
)


def test_encode_always_full_form() -> None:
    assert encode_frame(Protocol.LCP, b"\x01\x01\x00\x04") == bytes.fromhex("ff03c021 01010004")
    assert encode_frame(Protocol.IPV4, b"E") == IPV4_PREFIX + b"E"
    assert bytes.fromhex("ff030021") == IPV4_PREFIX
    assert bytes.fromhex("ff030057") == IPV6_PREFIX


@given(protocols, st.binary(max_size=64))
def test_round_trip(protocol: int, payload: bytes) -> None:
    assert decode_frame(encode_frame(protocol, payload)) == (protocol, payload)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("ff 03 80 21 01", (0x8021, b"\x01")),  # full form
        ("80 21 01", (0x8021, b"\x01")),  # ACFC
        ("ff 03 21 45", (0x0021, b"\x45")),  # PFC
        ("21 45 00", (0x0021, b"\x45\x00")),  # ACFC + PFC
        ("57 60", (0x0057, b"\x60")),
        ("ff 03 c0 21", (0xC021, b"")),  # empty information field
    ],
)
def test_compressed_forms_accepted(frame: str, expected: tuple[int, bytes]) -> None:
    assert decode_frame(bytes.fromhex(frame)) == expected


@pytest.mark.parametrize(
    "frame",
    [
        "",  # empty
        "ff",  # address without control
        "ff 02 c0 21",  # wrong control byte
        "ff 03",  # no protocol
        "c0",  # 2-byte protocol cut short
        "ff 03 c0",
    ],
)
def test_invalid_frames(frame: str) -> None:
    with pytest.raises(PppError):
        decode_frame(bytes.fromhex(frame))


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("12 34 01", (0x1234, b"\x01")),
        ("ff 03 00 00", (0x0000, b"")),
        ("ff 03 c0 20 01", (0xC020, b"\x01")),
    ],
)
def test_invalid_protocol_numbers_are_decoded_for_protocol_reject(
    frame: str, expected: tuple[int, bytes]
) -> None:
    # RFC 1661 §2: such frames are treated as an unrecognized protocol (Protocol-Reject), not dropped.
    assert decode_frame(bytes.fromhex(frame)) == expected


@given(st.binary(max_size=16))
def test_random_input_raises_only_ppp_error(data: bytes) -> None:
    try:
        protocol, information = decode_frame(data)
    except PppError:
        return
    assert 0 <= protocol <= 0xFFFF and data.endswith(information)
