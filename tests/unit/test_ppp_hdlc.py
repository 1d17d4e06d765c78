"""RFC 1662 async HDLC: FCS-16, escaping, stream decoding with errors counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pysstp.ppp.constants import FCS16_GOOD, FCS16_INIT
from pysstp.ppp.hdlc import HdlcDecoder, fcs16, hdlc_encode

LCP_REQUEST = bytes.fromhex("ff 03 c0 21 01 01 00 0e 01 04 05 dc 05 06 c3 9d ea ee")


def bitwise_fcs16(data: bytes) -> int:
    """The same CRC computed bit by bit, as an independent reference for the table."""
    fcs = FCS16_INIT
    for byte in data:
        for bit in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if (fcs ^ (byte >> bit)) & 1 else fcs >> 1
    return fcs


def test_fcs_check_value() -> None:
    # CRC-16/X-25 ("123456789") is 0x906e: the PPP FCS, complemented as it is sent.
    assert fcs16(b"123456789") ^ 0xFFFF == 0x906E


@given(st.binary(max_size=64))
def test_fcs_matches_bitwise_reference(data: bytes) -> None:
    assert fcs16(data) == bitwise_fcs16(data)


def test_encoded_frame_has_good_fcs_and_no_bare_control_bytes() -> None:
    encoded = hdlc_encode(LCP_REQUEST)
    assert encoded[0] == encoded[-1] == 0x7E
    body = encoded[1:-1]
    assert 0x7E not in body
    assert all(byte >= 0x20 for byte in body)
    assert body.startswith(bytes.fromhex("ff 7d 23 c0 21 7d 21 7d 21 7d 20 7d 2e"))
    unescaped = HdlcDecoder().feed(encoded)
    assert unescaped == [LCP_REQUEST]
    raw = bytearray()
    escaped = False
    for byte in body:
        if escaped:
            raw.append(byte ^ 0x20)
            escaped = False
        elif byte == 0x7D:
            escaped = True
        else:
            raw.append(byte)
    assert fcs16(bytes(raw)) == FCS16_GOOD == 0xF0B8


def test_accm_zero_escapes_only_flag_and_escape() -> None:
    encoded = hdlc_encode(b"\x00\x7e\x7d\x01", accm=0)
    assert encoded.startswith(bytes.fromhex("7e 00 7d 5e 7d 5d 01"))
    assert HdlcDecoder().feed(encoded) == [b"\x00\x7e\x7d\x01"]


@given(st.lists(st.binary(min_size=2, max_size=80), max_size=5), st.data())
def test_stream_split_anywhere(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(hdlc_encode(frame) for frame in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = HdlcDecoder()
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        received += decoder.feed(stream[start:end])
    assert received == frames
    assert decoder.errors == 0


def test_any_escaping_accepted() -> None:
    frame = b"\xff\x03\xc0\x21\x05\x01\x00\x04"
    trailer = (fcs16(frame) ^ 0xFFFF).to_bytes(2, "little")
    over_escaped = b"".join(bytes((0x7D, b ^ 0x20)) for b in frame + trailer)
    assert HdlcDecoder().feed(b"\x7e" + over_escaped + b"\x7e") == [frame]


def test_bad_frames_are_counted_and_dropped() -> None:
    decoder = HdlcDecoder()
    good = hdlc_encode(LCP_REQUEST)
    corrupted = bytearray(good)
    corrupted[5] ^= 0x01
    aborted = good[:-1] + b"\x7d\x7e"
    stream = bytes(corrupted) + b"\x7e\x01\x02\x7e" + aborted + b"\x7e\x7e\x7e" + good
    assert decoder.feed(stream) == [LCP_REQUEST]
    assert decoder.errors == 3  # bad FCS, too short, aborted; idle flags are not errors


def test_garbage_cannot_grow_memory() -> None:
    decoder = HdlcDecoder(max_frame=100)
    for _ in range(100):
        assert decoder.feed(b"\x55" * 1000) == []
    assert len(decoder._frame) <= 100
    assert decoder.feed(hdlc_encode(b"\xff\x03\xc0\x21")) == [b"\xff\x03\xc0\x21"]
    assert decoder.errors == 1


@given(st.binary(max_size=200))
def test_random_input_never_raises(data: bytes) -> None:
    decoder = HdlcDecoder()
    for frame in decoder.feed(data):
        assert len(frame) >= 2
