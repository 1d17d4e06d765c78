"""RADIUS codec pieces: EAP-Message splitting, the Access-Request as a server decodes it, what a reply
decides, and secret files."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as radius_packet

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.client import _genuine_reply
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.eap_message import MAX_ATTRIBUTE_VALUE, join_eap_message, split_eap_message
from pysstp.aaa.radius.reply import AccessReply
from pysstp.aaa.radius.request import AccessRequest, NasIdentity
from pysstp.aaa.radius.server import RadiusServer, read_secret
from pysstp.errors import ConfigError
from pysstp.ppp.auth.verification import ChapMd5Proof, EapProof, MsChapV2Proof, PapProof, Proof

SECRET = b"unit-secret"
SERVER = RadiusServer("192.0.2.10", SECRET)
CONTEXT = CallContext("sess-42", "198.51.100.7", "203.0.113.1", 42)
NAS = NasIdentity("nas-1", IPv4Address("192.0.2.1"))


@given(st.binary(max_size=3000))
def test_eap_message_split_and_join(packet: bytes) -> None:
    pieces = split_eap_message(packet)
    assert join_eap_message(pieces) == packet
    assert all(len(piece) == MAX_ATTRIBUTE_VALUE for piece in pieces[:-1])
    assert 0 < len(pieces[-1]) <= MAX_ATTRIBUTE_VALUE or packet == b""


def as_received(proof: Proof, nas: NasIdentity = NAS) -> radius_packet.AuthPacket:
    """The request as the server decodes it."""
    request = AccessRequest(nas, CONTEXT, "alice", proof, state=b"st").packet(SERVER)
    request.id = 17
    data = request.RequestPacket()
    return radius_packet.AuthPacket(packet=data, secret=SECRET, dict=radius_dictionary())


def test_pap_request_hides_the_password_and_is_signed() -> None:
    received = as_received(PapProof("pässword"))
    assert received.verify_message_authenticator()
    assert received.PwDecrypt(received["User-Password"][0]) == "pässword"
    assert b"p\xc3\xa4ssword" not in received.raw_packet
    assert received["User-Name"] == ["alice"]
    assert received["NAS-Identifier"] == ["nas-1"]
    assert received["NAS-IP-Address"] == ["192.0.2.1"]
    assert received["NAS-Port"] == [42]
    assert received["NAS-Port-Type"] == ["Virtual"]
    assert received["Service-Type"] == ["Framed-User"]
    assert received["Framed-Protocol"] == ["PPP"]
    assert received["Calling-Station-Id"] == ["198.51.100.7"]
    assert received["Called-Station-Id"] == ["203.0.113.1"]
    assert received["Acct-Session-Id"] == ["sess-42"]
    assert received["State"] == [b"st"]


def test_ipv6_nas_address() -> None:
    received = as_received(PapProof("x"), NasIdentity("nas-6", IPv6Address("2001:db8::1")))
    assert received["NAS-IPv6-Address"] == ["2001:db8::1"]
    assert "NAS-IP-Address" not in received


def test_chap_and_mschapv2_layouts() -> None:
    chap = as_received(ChapMd5Proof(7, b"c" * 16, b"r" * 16))
    assert chap["CHAP-Password"] == [b"\x07" + b"r" * 16]
    assert chap["CHAP-Challenge"] == [b"c" * 16]
    ms = as_received(MsChapV2Proof(9, b"a" * 16, b"p" * 16, b"n" * 24, flags=0))
    assert ms["MS-CHAP-Challenge"] == [b"a" * 16]
    assert ms["MS-CHAP2-Response"] == [b"\x09\x00" + b"p" * 16 + bytes(8) + b"n" * 24]


def test_eap_request_carries_the_packet_in_pieces() -> None:
    packet = bytes(range(256)) * 3
    received = as_received(EapProof(packet))
    assert [len(v) for v in received["EAP-Message"]] == [253, 253, 253, 9]
    assert join_eap_message(received["EAP-Message"]) == packet


def accept(**attributes: object) -> AccessReply:
    """An Access-Accept as the client hands it over: decoded against its request."""
    request = AccessRequest(NasIdentity("n"), CONTEXT, "alice", PapProof("x")).packet(SERVER)
    request.id = 1
    request.RequestPacket()
    answer = request.CreateReply()
    for name, value in attributes.items():
        answer.AddAttribute(name.replace("_", "-"), value)
    decoded = request.CreateReply(packet=answer.ReplyPacket())
    decoded.request_authenticator = request.authenticator
    return AccessReply(decoded, SERVER.name)


def test_authorization_from_an_accept(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "pysstp.radius")
    reply = accept(
        Framed_IP_Address="255.255.255.254",
        Framed_Pool="staff",
        Framed_Route=["10.1.0.0/16 0.0.0.0 1", "10.2.3.4", "garbage"],
        Framed_IPv6_Prefix="2001:db8:1::/64",
        Session_Timeout=3600,
        Class=[b"c1", b"c2"],
        MS_Primary_DNS_Server="192.0.2.53",
        Framed_MTU=1380,
        Reply_Message=["hello", "there"],
        Termination_Action=1,
    )
    auth = reply.authorization()
    assert auth.address is None  # 255.255.255.254: from the pool
    assert auth.pool == "staff"
    assert auth.routes == (IPv4Network("10.1.0.0/16"), IPv4Network("10.2.3.4/32"))
    assert auth.ipv6_prefix == IPv6Network("2001:db8:1::/64")
    assert auth.session_timeout == 3600 and auth.idle_timeout is None
    assert auth.classes == (b"c1", b"c2")
    assert auth.dns == (IPv4Address("192.0.2.53"),)
    assert auth.mtu == 1380
    assert auth.reply_message == "hello there"
    assert "ignored Framed-Route 'garbage'" in caplog.text
    assert "ignored attributes Termination-Action" in caplog.text


def test_rate_limits_from_wispr_bandwidth_attributes() -> None:
    auth = accept(WISPr_Bandwidth_Max_Up=2_000_000, WISPr_Bandwidth_Max_Down=10_000_000).authorization()
    assert (auth.rate_in, auth.rate_out) == (2_000_000, 10_000_000)
    assert (accept().authorization().rate_in, accept().authorization().rate_out) == (None, None)


def test_mppe_keys_are_salt_decrypted() -> None:
    receive, send = bytes(range(16)), bytes(range(16, 48))
    reply = accept(MS_MPPE_Recv_Key=receive, MS_MPPE_Send_Key=send)
    assert reply.key_material() == receive + send
    assert reply.hlak() == receive + send[:16]
    assert accept(MS_MPPE_Recv_Key=receive).hlak() is None


def test_read_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"s3cret\n")
    assert read_secret(path) == b"s3cret"
    path.write_bytes(b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(path)
    with pytest.raises(ConfigError, match="cannot read the RADIUS secret file"):
        read_secret(tmp_path / "missing")


def sent_request() -> radius_packet.AuthPacket:
    request = AccessRequest(NAS, CONTEXT, "alice", PapProof("x")).packet(SERVER)
    request.id = 5
    request.RequestPacket()
    return request


@given(st.binary(max_size=600))
def test_no_datagram_makes_the_reply_check_raise(data: bytes) -> None:
    assert _genuine_reply(SERVER, sent_request(), data) is None


@given(st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=40)), max_size=12))
def test_no_attribute_makes_an_accept_raise(attributes: list[tuple[int, bytes]]) -> None:
    request = sent_request()
    answer = request.CreateReply()
    for code, value in attributes:
        if code not in (33, 80):  # an unsent Proxy-State is refused (BlastRADIUS)
            answer.setdefault(code, []).append(value)
    data = answer.ReplyPacket()
    reply = _genuine_reply(SERVER, request, data)
    assert reply is not None
    accepted = AccessReply(reply, SERVER.name)
    accepted.authorization()
    accepted.hlak()
    _ = (accepted.mschap2_success, accepted.mschap_error, accepted.eap_message, accepted.state)


def test_pushed_routes_and_domain_from_an_accept(caplog: pytest.LogCaptureFixture) -> None:
    reply = accept(
        Framed_Route=["192.168.50.0/24"],
        Cisco_AVPair=[
            "pysstp:push-route=10.99.0.0/16",
            "pysstp:push-route=2001:db8:98::/48",
            "pysstp:domain=corp.example",
            "ip:addr-pool=other",
            "pysstp:push-route=10.1.2.3/8",
        ],
        Route_IPv6_Information="2001:db8:99::/48",
    )
    auth = reply.authorization()
    assert auth.routes == (IPv4Network("192.168.50.0/24"),)
    assert auth.push_routes == (
        IPv4Network("10.99.0.0/16"),
        IPv6Network("2001:db8:98::/48"),
        IPv6Network("2001:db8:99::/48"),
    )
    assert auth.domain == "corp.example"
    assert "ignored Cisco-AVPair 'pysstp:push-route=10.1.2.3/8'" in caplog.text
