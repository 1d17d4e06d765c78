"""Control packet and option list codec (RFC 1661 §5, §6)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.errors import PppError
from pysstp.ppp.packet import ControlPacket, Option, decode_options, encode_options

options = st.lists(st.builds(Option, st.integers(0, 255), st.binary(max_size=20)), max_size=8)


def test_encode_windows_lcp_request() -> None:
    data = encode_options(
        [
            Option(1, b"\x0f\xfb"),
            Option(5, bytes.fromhex("345f64ca")),
            Option(7),
            Option(8),
            Option(13, b"\x06"),
        ]
    )
    assert ControlPacket(1, 0, data).encode() == bytes.fromhex(
        "01 00 00 15 01 04 0F FB 05 06 34 5F 64 CA 07 02 08 02 0D 03 06"
    )


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=100))
def test_packet_round_trip(code: int, identifier: int, data: bytes) -> None:
    assert ControlPacket.decode(ControlPacket(code, identifier, data).encode()) == ControlPacket(
        code, identifier, data
    )


def test_padding_beyond_length_is_ignored() -> None:
    assert ControlPacket.decode(bytes.fromhex("06 05 00 04 00 00 00")) == ControlPacket(6, 5, b"")


@pytest.mark.parametrize("data", ["", "01 01 00", "01 01 00 03", "01 01 00 08 01 04 05"])
def test_bad_length(data: str) -> None:
    with pytest.raises(PppError):
        ControlPacket.decode(bytes.fromhex(data))


@given(options)
def test_options_round_trip(values: list[Option]) -> None:
    assert decode_options(encode_options(values)) == values


@pytest.mark.parametrize("data", ["01", "01 01", "01 00 05", "01 04 05", "01 02 05 07 00"])
def test_bad_options(data: str) -> None:
    with pytest.raises(PppError):
        decode_options(bytes.fromhex(data))


def test_option_value_too_long() -> None:
    with pytest.raises(ValueError):
        Option(1, bytes(254)).encode()


@given(st.binary(max_size=40))
def test_random_input_raises_only_ppp_error(data: bytes) -> None:
    for decode in (ControlPacket.decode, decode_options):
        with contextlib.suppress(PppError):
            decode(data)
