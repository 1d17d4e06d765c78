"""SSTP packet codec and deframer: reference byte images, real peers' bytes, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.errors import DelineationError, ProtocolError, SstpError
from pysstp.sstp.constants import MAX_DATA_PAYLOAD, AttributeId, HashProtocol, Status
from pysstp.sstp.packets import (
    CallAbort,
    CallConnectAck,
    CallConnected,
    CallConnectNak,
    CallConnectRequest,
    CallDisconnect,
    CallDisconnectAck,
    ControlMessage,
    Deframer,
    EchoRequest,
    EchoResponse,
    SstpPacketError,
    StatusInfo,
    decode_control,
    encode_control,
    encode_data,
    is_control,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


NONCE = bytes(range(32))

# Every control message, one row each: (message, its exact bytes)
BYTE_IMAGES: list[tuple[ControlMessage, bytes]] = [
    (CallConnectRequest(), h("10 01 00 0E 00 01 00 01 00 01 00 06 00 01")),
    (
        CallConnectAck(HashProtocol.SHA256, NONCE),
        h("10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 02") + NONCE,
    ),
    (
        CallConnectNak((StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.VALUE_NOT_SUPPORTED),)),
        h("10 01 00 14 00 03 00 01 00 02 00 0C 00 00 00 01 00 00 00 04"),
    ),
    (
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.INVALID_FRAME_RECEIVED)),
        h("10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 00 00 00 00 07"),
    ),
    (
        CallDisconnect(StatusInfo(AttributeId.NO_ERROR, Status.NO_ERROR)),
        h("10 01 00 14 00 06 00 01 00 02 00 0C 00 00 00 00 00 00 00 00"),
    ),
    (CallDisconnectAck(), h("10 01 00 08 00 07 00 00")),
    (EchoRequest(), h("10 01 00 08 00 08 00 00")),
    (EchoResponse(), h("10 01 00 08 00 09 00 00")),
]


@pytest.mark.parametrize(("msg", "image"), BYTE_IMAGES, ids=[type(m).__name__ for m, _ in BYTE_IMAGES])
def test_reference_byte_images(msg: ControlMessage, image: bytes) -> None:
    assert encode_control(msg) == image
    assert decode_control(image) == msg
    assert is_control(image)


def test_call_connected_v1_image() -> None:
    nonce = h("412B489AEBD7ECC7D08966F26BE7CD72B231A0E9210D7C91B308862B0344C435")
    cert = h("7993EF314C493DACE9F02D60E7E61C84B6690AAFE9D7AEEA92CBBE8AD599422D")
    mac = h("52A68EFD8CFFBF52770B8F0FE8EC73716583AF6D611EB6D179B3B20840985449")
    image = h("10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 02") + nonce + cert + mac
    msg = CallConnected(HashProtocol.SHA256, nonce, cert, mac)
    assert decode_control(image) == msg
    assert encode_control(msg) == image


def test_abort_and_disconnect_without_status_carry_a_no_error_status_info() -> None:
    assert encode_control(CallAbort()) == h("10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 00 00 00 00 00")
    assert encode_control(CallDisconnect()) == h(
        "10 01 00 14 00 06 00 01 00 02 00 0C 00 00 00 00 00 00 00 00"
    )


# ---------------------------------------------------------------------------------------- real peers' bytes


def test_softether_call_connect_ack() -> None:
    # as SoftEther sends it: SHA-256 only
    image = h(
        "10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 02 be 6f 07 91 dc c1 0f a0 fb 08 21 7b 1f e0 3d 12"
        "b6 ce ae 8f 82 e0 fd 1c f7 e5 05 3b ad 1f 49 9c"
    )
    msg = decode_control(image)
    assert msg == CallConnectAck(HashProtocol.SHA256, image[16:])


def test_softether_attributeless_abort_and_disconnect() -> None:
    assert decode_control(h("10 01 00 08 00 05 00 00")) == CallAbort(None)
    assert decode_control(h("10 01 00 08 00 06 00 00")) == CallDisconnect(None)


def test_sstpd_abort_with_8_byte_status_attribute() -> None:
    # sstpd's answer to a corrupted compound MAC, as recorded
    msg = decode_control(h("10 01 00 10 00 05 00 01 00 02 00 08 00 00 00 07"))
    assert msg == CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.INVALID_FRAME_RECEIVED))


def test_sstpd_disconnect_with_attribute_id_zero() -> None:
    msg = decode_control(h("10 01 00 10 00 06 00 01 00 00 00 08 00 00 00 00"))
    assert msg == CallDisconnect(StatusInfo(AttributeId.NO_ERROR, Status.NO_ERROR))


def test_accel_abort_names_status_info_attribute() -> None:
    msg = decode_control(h("10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 02 00 00 00 07"))
    assert msg == CallAbort(StatusInfo(AttributeId.STATUS_INFO, Status.INVALID_FRAME_RECEIVED))


def test_accel_nak_with_two_stray_bytes() -> None:
    msg = decode_control(h("10 01 00 16 00 03 00 01 00 02 00 0C 00 00 00 01 00 00 00 04 00 00"))
    assert msg == CallConnectNak(
        (StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.VALUE_NOT_SUPPORTED),)
    )


def test_abort_with_garbage_attribute_is_still_an_abort() -> None:
    assert decode_control(h("10 01 00 0E 00 05 00 01 00 02 00 06 00 07")) == CallAbort(None)
    assert decode_control(h("10 01 00 0A 00 05 00 03 00 02")) == CallAbort(None)


def test_status_info_with_value_is_kept() -> None:
    image = h("10 01 00 16 00 03 00 01 00 02 00 0E 00 00 00 01 00 00 00 04 00 02")
    assert decode_control(image) == CallConnectNak(
        (StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.VALUE_NOT_SUPPORTED, h("00 02")),)
    )
    assert encode_control(decode_control(image)) == image


def test_sstpc_call_connected_sha1_layout() -> None:
    # as sstpc sends it: SHA-1 hash and MAC are 20 bytes + 12 zero bytes
    cert, mac = bytes(range(1, 21)), bytes(range(101, 121))
    image = h("10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 01") + NONCE + cert + bytes(12) + mac + bytes(12)
    msg = decode_control(image)
    assert isinstance(msg, CallConnected)
    assert msg.hash_protocol is HashProtocol.SHA1
    assert msg.cert_hash == cert + bytes(12)
    assert msg.compound_mac == mac + bytes(12)


def test_reserved_bits_are_ignored_on_receive() -> None:
    assert decode_control(h("10 FF F0 08 00 08 00 00")) == EchoRequest()
    assert decode_control(h("10 01 00 0E 00 01 00 01 FF 01 F0 06 00 01")) == CallConnectRequest()


# ---------------------------------------------------------------------------------------- strict decoding


@pytest.mark.parametrize(
    ("image", "status"),
    [
        ("10 01 00 08 00 01 00 00", Status.REQUIRED_ATTRIBUTE_MISSING),
        ("10 01 00 0E 00 01 00 01 00 02 00 06 00 01", Status.ATTRIB_NOT_SUPPORTED_IN_MSG),
        ("10 01 00 0E 00 01 00 01 00 09 00 06 00 01", Status.UNRECOGNIZED_ATTRIBUTE),
        ("10 01 00 14 00 01 00 02 00 01 00 06 00 01 00 01 00 06 00 01", Status.DUPLICATE_ATTRIBUTE),
        ("10 01 00 0F 00 01 00 01 00 01 00 07 00 01 00", Status.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0E 00 01 00 01 00 01 00 10 00 01", Status.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0E 00 01 00 01 00 01 00 02 00 01", Status.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 10 00 01 00 01 00 01 00 06 00 01 00 00", Status.INVALID_FRAME_RECEIVED),
        ("10 01 00 0A 00 01 00 01 00 01", Status.INVALID_FRAME_RECEIVED),
    ],
)
def test_strict_call_connect_request(image: str, status: Status) -> None:
    with pytest.raises(SstpPacketError) as info:
        decode_control(h(image))
    assert info.value.status == status
    assert info.value.message_type == 1


def test_call_connect_ack_and_call_connected_must_have_exact_sizes() -> None:
    ack = encode_control(CallConnectAck(HashProtocol.SHA256, NONCE))
    short_ack = h("10 01 00 2F") + ack[4:11] + b"\x27" + ack[12:47]
    with pytest.raises(SstpPacketError):
        decode_control(short_ack)
    connected = encode_control(CallConnected(HashProtocol.SHA256, NONCE, bytes(32), bytes(32)))
    with pytest.raises(SstpPacketError):
        decode_control(h("10 01 00 6F") + connected[4:11] + b"\x67" + connected[12:111])


@pytest.mark.parametrize(
    "image",
    [
        "",
        "10 01 00 08 00 08 00",  # shorter than a control header
        "11 01 00 08 00 08 00 00",  # wrong version
        "10 00 00 08 00 08 00 00",  # a data packet
        "10 01 00 09 00 08 00 00",  # length field disagrees
        "10 01 00 08 00 0A 00 00",  # unknown message type
        "10 01 00 08 00 00 00 00",
    ],
)
def test_decode_rejects(image: str) -> None:
    with pytest.raises(SstpPacketError):
        decode_control(h(image))


# ---------------------------------------------------------------------------------------- encoding


def test_encode_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        encode_control(CallConnectAck(HashProtocol.SHA256, bytes(31)))
    with pytest.raises(ValueError):
        encode_control(CallConnected(HashProtocol.SHA1, NONCE, bytes(20), bytes(32)))
    with pytest.raises(ValueError):
        encode_control(CallConnectNak(()))
    with pytest.raises(ValueError):
        encode_control(CallAbort(StatusInfo(256, 0)))
    with pytest.raises(ValueError):
        encode_control(CallAbort(StatusInfo(0, 0, bytes(5000))))
    with pytest.raises(TypeError):
        encode_control("nope")  # type: ignore[arg-type]


def test_encode_data() -> None:
    frame = h("ff 03 80 21 01 01 00 0a 03 06 ac 17 18 0e")
    assert encode_data(frame) == h("10 00 00 12") + frame
    assert not is_control(encode_data(frame))
    assert len(encode_data(bytes(MAX_DATA_PAYLOAD))) == 4095
    with pytest.raises(ValueError):
        encode_data(bytes(MAX_DATA_PAYLOAD + 1))


# ---------------------------------------------------------------------------------------- properties

status_infos = st.builds(StatusInfo, st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=16))
hash_masks = st.integers(0, 255).map(HashProtocol)
messages: st.SearchStrategy[ControlMessage] = st.one_of(
    st.builds(CallConnectRequest, st.integers(0, 0xFFFF)),
    st.builds(CallConnectAck, hash_masks, st.binary(min_size=32, max_size=32)),
    st.builds(CallConnectNak, st.lists(status_infos, min_size=1, max_size=5).map(tuple)),
    st.builds(
        CallConnected,
        hash_masks,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
    ),
    st.builds(CallAbort, status_infos),
    st.builds(CallDisconnect, status_infos),
    st.just(CallDisconnectAck()),
    st.just(EchoRequest()),
    st.just(EchoResponse()),
)


@given(messages)
def test_round_trip(msg: ControlMessage) -> None:
    packet = encode_control(msg)
    assert decode_control(packet) == msg
    assert int.from_bytes(packet[2:4], "big") == len(packet)
    assert Deframer().feed(packet) == [packet]


@given(st.binary(max_size=64))
def test_random_bytes_into_decode_control(data: bytes) -> None:
    with contextlib.suppress(SstpError):
        decode_control(data)


@given(st.integers(0, 12), st.integers(0, 6), st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header(message_type: int, count: int, body: bytes) -> None:
    packet = (
        bytes((0x10, 0x01)) + (8 + len(body)).to_bytes(2, "big") + bytes((0, message_type, 0, count)) + body
    )
    with contextlib.suppress(SstpError):
        decode_control(packet)


# ---------------------------------------------------------------------------------------- deframer


def test_deframer_many_packets_in_one_read_and_one_across_reads() -> None:
    a, b, c = (
        encode_control(EchoRequest()),
        encode_data(b"\xff\x03\xc0\x21" + bytes(50)),
        encode_control(CallAbort()),
    )
    deframer = Deframer()
    stream = a + b + c
    assert deframer.feed(stream[:3]) == []
    assert deframer.feed(stream[3:10]) == [a]
    assert deframer.feed(stream[10:]) == [b, c]
    assert deframer.feed(b"") == []


def test_deframer_masks_reserved_bits_of_the_length() -> None:
    packet = h("10 01 F0 08 00 08 00 00")
    assert Deframer().feed(packet + packet) == [packet, packet]


@pytest.mark.parametrize(
    "data",
    [
        "11 00 00 08",  # wrong version
        "00",  # wrong version, known from the first byte
        "10 00 00 03",  # data packet shorter than its header
        "10 01 00 07 00 08 00",  # control packet shorter than a control header
        "48 54 54 50",  # "HTTP" where SSTP was expected
    ],
)
def test_deframer_delineation_errors(data: str) -> None:
    with pytest.raises(DelineationError):
        Deframer().feed(h(data))


def test_deframer_detects_a_bad_packet_after_good_ones() -> None:
    with pytest.raises(DelineationError):
        Deframer().feed(encode_control(EchoRequest()) + h("20 00 00 04"))


packet_lists = st.lists(
    st.one_of(messages.map(encode_control), st.binary(max_size=MAX_DATA_PAYLOAD).map(encode_data)),
    max_size=12,
)


@given(packet_lists, st.lists(st.integers(0, 60000), max_size=20))
def test_deframer_random_split_points(packets: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(packets)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    deframer = Deframer()
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(deframer.feed(stream[start:end]))
    assert out == packets


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_deframer_random_bytes_raise_only_delineation_errors(chunks: list[bytes]) -> None:
    deframer = Deframer()
    try:
        for chunk in chunks:
            for packet in deframer.feed(chunk):
                assert packet[0] == 0x10
    except DelineationError as exc:
        assert isinstance(exc, ProtocolError)


def test_deframer_large_stream_is_linear() -> None:
    packet = encode_data(b"\xff\x03\x00\x21" + bytes(1396))
    stream = packet * 20000
    deframer = Deframer()
    count = 0
    for start in range(0, len(stream), 16384):
        count += len(deframer.feed(stream[start : start + 16384]))
    assert count == 20000


# --------------------------------------------------------------------------- single pass of the data path

IP_WORD = 0xFF030021
IP_WORDS = frozenset((IP_WORD, 0xFF030057))


def ip_data(payload: bytes) -> bytes:
    return encode_data(IP_WORD.to_bytes(4, "big") + payload)


def split_all(deframer: Deframer, data: bytes) -> list[tuple[str, bytes]]:
    """One :meth:`Deframer.split`, as the stream's order: ("ip", payload) and ("other", packet)."""
    payloads, others = deframer.split(data, IP_WORDS)
    out: list[tuple[str, bytes]] = []
    done = 0
    for before, packet in others:
        out += [("ip", bytes(p)) for p in payloads[done:before]]
        out.append(("other", packet))
        done = before
    return out + [("ip", bytes(p)) for p in payloads[done:]]


def test_split_several_ip_packets_in_one_read() -> None:
    payloads, others = Deframer().split(b"".join(ip_data(bytes([n]) * 100) for n in range(5)), IP_WORDS)
    assert [bytes(p) for p in payloads] == [bytes([n]) * 100 for n in range(5)]
    assert all(isinstance(p, memoryview) for p in payloads)
    assert others == []


def test_split_keeps_a_packet_across_reads() -> None:
    deframer = Deframer()
    first, second = ip_data(b"a" * 40), ip_data(b"b" * 1400)
    stream = first + second
    payloads, _ = deframer.split(stream[:100], IP_WORDS)
    assert [bytes(p) for p in payloads] == [b"a" * 40]
    assert deframer.split(stream[100:101], IP_WORDS) == ([], [])
    payloads, _ = deframer.split(stream[101:], IP_WORDS)
    assert [bytes(p) for p in payloads] == [b"b" * 1400]


def test_split_views_outlive_the_next_read() -> None:
    deframer = Deframer()
    data = bytearray(ip_data(b"x" * 20) + ip_data(b"y" * 20)[:5])
    payloads, _ = deframer.split(data, IP_WORDS)  # type: ignore[arg-type]
    data[:] = bytes(len(data))  # the caller reuses its buffer
    deframer.split(ip_data(b"y" * 20)[5:], IP_WORDS)
    assert bytes(payloads[0]) == b"x" * 20


def test_split_keeps_control_and_other_ppp_in_order_among_ip() -> None:
    echo, lcp = encode_control(EchoRequest()), encode_data(b"\xff\x03\xc0\x21" + bytes(10))
    empty_ip = ip_data(b"")  # an IP word and nothing after it is not an IP packet
    stream = echo + ip_data(b"1") + ip_data(b"2") + lcp + ip_data(b"3") + empty_ip + echo
    payloads, others = Deframer().split(stream, IP_WORDS)
    assert [bytes(p) for p in payloads] == [b"1", b"2", b"3"]
    assert others == [(0, echo), (2, lcp), (3, empty_ip), (3, echo)]


def test_split_takes_short_packets_at_the_end_of_a_read() -> None:
    short = encode_data(b"\xff\x03")  # 6 bytes: less than the 8 one unpack reads
    payloads, others = Deframer().split(ip_data(b"1") + short + short, IP_WORDS)
    assert [bytes(p) for p in payloads] == [b"1"]
    assert others == [(1, short), (1, short)]


@pytest.mark.parametrize(
    "bad",
    [
        "10 00 00 03 ff 03 00 21",  # data packet shorter than its header
        "10 00 00 02",  # the same, at the end of a read
        "10 01 00 04 00 01 00 00",  # control packet shorter than a control header
        "20 00 05 00 ff 03 00 21",  # wrong version on an IP-looking packet
        "00",  # wrong version, known from the first byte
    ],
)
def test_split_rejects_a_bad_header_after_good_packets(bad: str) -> None:
    with pytest.raises(DelineationError):
        Deframer().split(ip_data(b"ok") + encode_control(EchoRequest()) + h(bad), IP_WORDS)


mixed_packets = st.lists(
    st.one_of(
        messages.map(encode_control),
        st.binary(max_size=MAX_DATA_PAYLOAD).map(encode_data),
        st.binary(max_size=MAX_DATA_PAYLOAD - 4).map(ip_data),
    ),
    max_size=12,
)


def classified(packet: bytes) -> tuple[str, bytes]:
    """What the data path must make of one whole packet."""
    if not is_control(packet) and len(packet) > 8 and int.from_bytes(packet[4:8]) in IP_WORDS:
        return ("ip", packet[8:])
    return ("other", packet)


@given(mixed_packets, st.lists(st.integers(0, 60000), max_size=20))
def test_split_random_packets_and_split_points(packets: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(packets)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    deframer = Deframer()
    out: list[tuple[str, bytes]] = []
    for start, end in itertools.pairwise(points):
        out += split_all(deframer, stream[start:end])
    assert out == [classified(p) for p in packets]


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_split_random_bytes_raise_only_delineation_errors(chunks: list[bytes]) -> None:
    deframer = Deframer()
    with contextlib.suppress(DelineationError):
        for chunk in chunks:
            split_all(deframer, b"\x10" + chunk)
