"""Dynamic Authorization (RFC 5176) packet by packet: requests built with pyrad, answered without a socket."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad.packet import (
    CoAACK,
    CoANAK,
    CoAPacket,
    CoARequest,
    DisconnectACK,
    DisconnectNAK,
    DisconnectRequest,
)

from pysstp.aaa.dae import (
    Change,
    DaeClient,
    DaeSession,
    DynamicAuthorization,
    ErrorCause,
    LocalSessions,
    Selector,
)
from pysstp.aaa.radius.dictionary import radius_dictionary

SECRET = b"dae-secret"
CLIENT = ("192.0.2.10", 40000)
NOW = 1000.0
WALL = 1_800_000_000.0
DICTIONARY = radius_dictionary()


@dataclass
class Session:
    session_id: str
    user: str | None
    framed_address: IPv4Address | None
    calling_station: str


@dataclass
class Table(LocalSessions):
    """A session table that records what was done to it."""

    known: list[Session] = field(
        default_factory=lambda: [
            Session("00000000000000a1", "alice", IPv4Address("10.77.0.2"), "198.51.100.7"),
            Session("00000000000000a2", "alice", IPv4Address("10.77.0.3"), "198.51.100.8"),
            Session("00000000000000b1", "bob", IPv4Address("10.77.0.4"), "198.51.100.7"),
        ]
    )
    disconnected: list[str] = field(default_factory=list)
    changed: list[tuple[str, Change]] = field(default_factory=list)

    def sessions(self) -> list[Session]:
        return self.known

    def disconnect(self, session: DaeSession, reason: str) -> None:
        self.disconnected.append(session.session_id)

    def change(self, session: DaeSession, change: Change) -> None:
        self.changed.append((session.session_id, change))


def handle(
    dae: DynamicAuthorization, raw: bytes, source: tuple[str, int], now: float, wall: float
) -> bytes | None:
    """The reply of ``dae`` to one datagram, on an event loop of its own."""
    return asyncio.run(dae.handle(raw, source, now, wall))


def make(
    code: int = DisconnectRequest, *, secret: bytes = SECRET, ma: bool = False, **attributes: Any
) -> bytes:
    """A request as a RADIUS client sends it (attribute names with ``_`` for ``-``)."""
    packet = CoAPacket(code=code, id=7, secret=secret, dict=DICTIONARY, **attributes)
    if ma:
        packet.add_message_authenticator()
    raw: bytes = packet.RequestPacket()
    return raw


def answer(raw: bytes, table: Table | None = None) -> tuple[CoAPacket | None, Table, DynamicAuthorization]:
    """The decoded and verified reply to ``raw`` from CLIENT (None: dropped)."""
    table = table or Table()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    reply = handle(dae, raw, CLIENT, NOW, WALL)
    return (decode(raw, reply) if reply is not None else None), table, dae


def decode(raw: bytes, reply: bytes) -> CoAPacket:
    request = CoAPacket(secret=SECRET, dict=DICTIONARY, packet=raw)
    decoded: CoAPacket = request.CreateReply(packet=reply)
    assert request.VerifyReply(decoded, reply), "the Response Authenticator must check out"
    return decoded


def nak_cause(reply: CoAPacket | None) -> str:
    assert reply is not None and reply.code in (DisconnectNAK, CoANAK)
    (cause,) = reply["Error-Cause"]
    return str(cause)


# -- Disconnect-Request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "ended"),
    [
        ({"User_Name": "alice"}, ["00000000000000a1", "00000000000000a2"]),
        ({"Acct_Session_Id": "00000000000000b1"}, ["00000000000000b1"]),
        ({"Framed_IP_Address": "10.77.0.3"}, ["00000000000000a2"]),
        ({"Calling_Station_Id": "198.51.100.7"}, ["00000000000000a1", "00000000000000b1"]),
        # Several attributes: every one must match.
        ({"User_Name": "alice", "Calling_Station_Id": "198.51.100.7"}, ["00000000000000a1"]),
        (
            {"User_Name": "bob", "Framed_IP_Address": "10.77.0.4", "NAS_Identifier": "any"},
            ["00000000000000b1"],
        ),
    ],
)
def test_a_disconnect_request_ends_the_matching_sessions(
    attributes: dict[str, Any], ended: list[str]
) -> None:
    reply, table, dae = answer(make(**attributes))
    assert reply is not None and reply.code == DisconnectACK
    assert "Error-Cause" not in reply
    assert table.disconnected == ended
    assert dae.counters.acks == 1


def test_attributes_that_match_different_sessions_match_none() -> None:
    reply, table, _ = answer(make(User_Name="alice", Framed_IP_Address="10.77.0.4"))
    assert nak_cause(reply) == ErrorCause.SESSION_CONTEXT_NOT_FOUND
    assert table.disconnected == []


def test_an_unknown_session_gets_a_nak_503() -> None:
    reply, _, dae = answer(make(User_Name="carol"))
    assert reply is not None and reply.code == DisconnectNAK
    assert nak_cause(reply) == "Session-Context-Not-Found"
    assert dae.counters.naks == 1


@pytest.mark.parametrize(
    ("code", "attributes", "cause"),
    [
        (DisconnectRequest, {}, ErrorCause.MISSING_ATTRIBUTE),
        (DisconnectRequest, {"NAS_Identifier": "pysstp"}, ErrorCause.MISSING_ATTRIBUTE),
        (DisconnectRequest, {"User_Name": "alice", "NAS_Port": 3}, ErrorCause.UNSUPPORTED_ATTRIBUTE),
        (DisconnectRequest, {"User_Name": "alice", "Session_Timeout": 60}, ErrorCause.UNSUPPORTED_ATTRIBUTE),
        (CoARequest, {"User_Name": "alice", "Class": b"gold"}, ErrorCause.UNSUPPORTED_ATTRIBUTE),
        (DisconnectRequest, {"User_Name": ["alice", "bob"]}, ErrorCause.INVALID_REQUEST),
        # Service-Type 17: Authorize-Only (RFC 5176 §3.2)
        (CoARequest, {"User_Name": "alice", "Service_Type": 17}, ErrorCause.UNSUPPORTED_SERVICE),
        (DisconnectRequest, {"User_Name": "alice", "Service_Type": 17}, ErrorCause.UNSUPPORTED_ATTRIBUTE),
    ],
)
def test_what_cannot_be_done_gets_a_nak_with_the_cause(
    code: int, attributes: dict[str, Any], cause: ErrorCause
) -> None:
    reply, table, _ = answer(make(code, **attributes))
    assert reply is not None and reply.code == (DisconnectNAK if code == DisconnectRequest else CoANAK)
    assert nak_cause(reply) == cause
    assert table.disconnected == [] and table.changed == []


def test_an_attribute_not_in_the_dictionary_is_unsupported() -> None:
    packet = CoAPacket(code=DisconnectRequest, id=7, secret=SECRET, dict=DICTIONARY, User_Name="alice")
    packet[200] = [b"x"]  # raw: no name in the dictionary
    reply, _, _ = answer(packet.RequestPacket())
    assert nak_cause(reply) == ErrorCause.UNSUPPORTED_ATTRIBUTE


def test_a_malformed_address_is_an_invalid_request() -> None:
    packet = CoAPacket(code=DisconnectRequest, id=7, secret=SECRET, dict=DICTIONARY)
    packet[8] = [b"\x0a\x4d\x00"]  # Framed-IP-Address of 3 octets
    reply, _, _ = answer(packet.RequestPacket())
    assert nak_cause(reply) == ErrorCause.INVALID_REQUEST


def test_proxy_state_comes_back_in_the_reply() -> None:
    reply, _, _ = answer(make(User_Name="carol", Proxy_State=b"proxy-1"))
    assert reply is not None and reply["Proxy-State"] == [b"proxy-1"]


# -- CoA-Request -----------------------------------------------------------------------------------


def test_a_coa_request_changes_the_timeouts_of_the_matching_session() -> None:
    reply, table, _ = answer(
        make(CoARequest, Acct_Session_Id="00000000000000b1", Session_Timeout=30, Idle_Timeout=10)
    )
    assert reply is not None and reply.code == CoAACK
    assert table.changed == [("00000000000000b1", Change(session_timeout=30, idle_timeout=10))]
    assert table.disconnected == []


def test_a_coa_request_for_no_session_gets_a_nak_503() -> None:
    reply, table, _ = answer(make(CoARequest, User_Name="carol", Session_Timeout=30))
    assert reply is not None and reply.code == CoANAK
    assert nak_cause(reply) == ErrorCause.SESSION_CONTEXT_NOT_FOUND
    assert table.changed == []


# -- what is dropped -------------------------------------------------------------------------------


def test_a_request_from_an_unknown_client_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    table = Table()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    with caplog.at_level(logging.WARNING, "pysstp.dae"):
        assert handle(dae, make(User_Name="alice"), ("192.0.2.99", 40000), NOW, WALL) is None
    assert "192.0.2.99:40000: not a dynamic authorization client" in caplog.text
    assert table.disconnected == [] and dae.counters.dropped == 1


def test_a_client_seen_through_a_dual_stack_socket_is_known() -> None:
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], Table())
    assert handle(dae, make(User_Name="alice"), ("::ffff:192.0.2.10", 40000), NOW, WALL) is not None


def test_a_wrong_request_authenticator_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "pysstp.dae"):
        reply, table, dae = answer(make(User_Name="alice", secret=b"not the secret"))
    assert reply is None and table.disconnected == [] and dae.counters.dropped == 1
    assert "wrong Request Authenticator" in caplog.text


def test_a_wrong_message_authenticator_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    raw = bytearray(make(User_Name="alice", ma=True))
    start = raw.index(bytes([80, 18])) + 2  # the Message-Authenticator, first attribute
    raw[start] ^= 0xFF
    # Sign the tampered packet again, so that only the Message-Authenticator is wrong.
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + bytes(16) + bytes(raw[20:]) + SECRET).digest()
    with caplog.at_level(logging.WARNING, "pysstp.dae"):
        reply, table, _ = answer(bytes(raw))
    assert reply is None and table.disconnected == []
    assert "wrong Message-Authenticator" in caplog.text


def test_a_request_with_a_message_authenticator_gets_a_reply_with_one() -> None:
    reply, table, _ = answer(make(User_Name="alice", ma=True))
    assert reply is not None and reply.code == DisconnectACK and reply.message_authenticator
    assert len(table.disconnected) == 2  # decode() checked the reply's Message-Authenticator too


def test_a_replayed_request_is_dropped_by_its_event_timestamp(caplog: pytest.LogCaptureFixture) -> None:
    reply, table, _ = answer(make(User_Name="alice", Event_Timestamp=int(WALL) - 3600))
    assert reply is None and table.disconnected == []
    reply, table, _ = answer(make(User_Name="alice", Event_Timestamp=int(WALL) - 5))
    assert reply is not None and reply.code == DisconnectACK


def test_something_that_is_not_radius_is_dropped() -> None:
    reply, _, dae = answer(b"\x28\x01\x00")
    assert reply is None and dae.counters.dropped == 1


def test_an_access_request_on_the_dae_port_is_dropped() -> None:
    reply, _, _ = answer(make(1, User_Name="alice"))
    assert reply is None


# -- duplicates (RFC 5080 §2.2.2) ------------------------------------------------------------------


def test_a_retransmitted_request_gets_the_same_answer_and_is_done_once() -> None:
    table = Table()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    raw = make(User_Name="bob")
    first = handle(dae, raw, CLIENT, NOW, WALL)
    again = handle(dae, raw, CLIENT, NOW + 2, WALL + 2)
    assert first is not None and again == first
    assert table.disconnected == ["00000000000000b1"]
    assert dae.counters.duplicates == 1
    # Long after, the same bytes are a new request.
    handle(dae, raw, CLIENT, NOW + 301, WALL + 2)
    assert table.disconnected == ["00000000000000b1"] * 2


def test_a_copy_from_another_source_port_is_dropped_as_a_replay(caplog: pytest.LogCaptureFixture) -> None:
    """A copy inside the window is not a new request because it comes from another port (RFC 5176 §6.3):
    the bytes are signed by the client, the source port is not."""
    table = Table()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    raw = make(User_Name="bob")
    assert handle(dae, raw, CLIENT, NOW, WALL) is not None
    assert handle(dae, raw, (CLIENT[0], CLIENT[1] + 1), NOW + 60, WALL + 60) is None
    assert table.disconnected == ["00000000000000b1"]
    assert "dropped as a possible replay" in caplog.text
    assert dae.counters.dropped == 1


class SlowTable:
    """Sessions in other processes: each request is answered when ``go`` is set."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.acted: list[Selector] = []

    async def act(self, selector: Selector, change: Change | None, reason: str) -> list[str]:
        self.acted.append(selector)
        await self.go.wait()
        return ["00000000000000b1"]


async def test_a_retransmission_while_the_first_copy_is_answered_gets_the_same_answer() -> None:
    table = SlowTable()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    raw = make(User_Name="bob")
    first = asyncio.ensure_future(dae.handle(raw, CLIENT, NOW, WALL))
    again = asyncio.ensure_future(dae.handle(raw, CLIENT, NOW + 1, WALL + 1))
    while not table.acted:
        await asyncio.sleep(0)
    table.go.set()
    answers = await asyncio.gather(first, again)
    assert answers[0] is not None and answers[0] == answers[1]
    assert len(table.acted) == 1 and dae.counters.duplicates == 1


def test_the_same_identifier_with_another_authenticator_is_a_new_request() -> None:
    table = Table()
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], table)
    handle(dae, make(User_Name="bob"), CLIENT, NOW, WALL)
    handle(dae, make(Acct_Session_Id="00000000000000a1"), CLIENT, NOW, WALL)  # id 7 again
    assert table.disconnected == ["00000000000000b1", "00000000000000a1"]


# -- pieces ----------------------------------------------------------------------------------------


def test_a_selector_names_its_attributes() -> None:
    selector = Selector(user="alice", address=IPv4Address("10.77.0.2"))
    assert str(selector) == "User-Name=alice, Framed-IP-Address=10.77.0.2"
    assert selector and not Selector()


# -- whatever arrives ------------------------------------------------------------------------------


def signed(code: int, attributes: bytes) -> bytes:
    """A request with any attribute bytes and a correct Request Authenticator (RFC 5176 §2.3)."""
    header = struct.pack("!BBH", code, 9, 20 + len(attributes))
    return header + hashlib.md5(header + bytes(16) + attributes + SECRET).digest() + attributes


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from([DisconnectRequest, CoARequest]),
    attributes=st.lists(
        st.tuples(
            st.sampled_from([1, 4, 8, 26, 27, 28, 31, 44, 55, 80, 95, 101, 200]), st.binary(max_size=20)
        )
    ),
    tail=st.binary(max_size=8),
)
def test_no_request_makes_the_handler_raise(
    code: int, attributes: list[tuple[int, bytes]], tail: bytes
) -> None:
    body = b"".join(bytes([kind, len(value) + 2]) + value for kind, value in attributes) + tail
    if len(body) > 4000:
        return
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], Table())
    reply = handle(dae, signed(code, body), CLIENT, NOW, WALL)
    assert reply is None or reply[0] in (DisconnectACK, DisconnectNAK, CoAACK, CoANAK)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_no_datagram_makes_the_handler_raise(data: bytes) -> None:
    dae = DynamicAuthorization([DaeClient(IPv4Address(CLIENT[0]), SECRET)], Table())
    assert handle(dae, data, CLIENT, NOW, WALL) is None


def test_a_change_names_its_attributes() -> None:
    assert str(Change(session_timeout=60)) == "Session-Timeout=60"
    assert str(Change(session_timeout=0, idle_timeout=30)) == "Session-Timeout=0, Idle-Timeout=30"
    assert str(Change()) == "no change"
