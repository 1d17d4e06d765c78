"""PEAPv0 with inner EAP-MSCHAPv2 (MS-PEAP) in memory: the TLV codec, the keys, both roles, every refusal."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.errors import AuthError
from pysstp.ppp.auth import eap as eap_module
from pysstp.ppp.auth import make_authenticator, make_peer
from pysstp.ppp.auth.eap import EapAuthenticator, EapPeer
from pysstp.ppp.auth.eap_packet import EapPacket
from pysstp.ppp.auth.keys import ZERO_HLAK, peap_compound_keys, peap_msk, peap_prf_plus
from pysstp.ppp.auth.peap import (
    BindingSubType,
    CryptoBinding,
    Extensions,
    PeapPeer,
    PeapPeerSettings,
    PeapServer,
    PeapServerSettings,
    ResultStatus,
    TlvError,
    inner_packet,
)
from pysstp.ppp.auth.tls_tunnel import EapTlsData, EapTlsFlags, TlsConnection
from pysstp.ppp.auth.verification import Verdict
from pysstp.ppp.constants import AuthMethod, EapCode, EapType
from pysstp.ppp.events import Authenticated, AuthenticationFailed

from helpers.auth_wire import Conversation, feed_garbage, seeded_random
from helpers.certlab import identity, lab, p_hash
from helpers.conversation import Conversation as LinkConversation
from helpers.conversation import client_config, server_config

USERS = StaticCredentials({"alice": "alicepw"})
PEAP_ONLY = (AuthMethod.PEAP,)


def server_settings() -> PeapServerSettings:
    return PeapServerSettings(identity(lab().server))


def peer_settings(**overrides: object) -> PeapPeerSettings:
    settings: dict[str, object] = {"trusted_cas": (lab().ca.certificate,), "server_name": "vpn.example.test"}
    settings.update(overrides)
    return PeapPeerSettings(**settings)  # type: ignore[arg-type]


def talk(password: str = "alicepw", *, peer: PeapPeerSettings | None = None) -> Conversation:
    server = EapAuthenticator(eap_methods=PEAP_ONLY, peap=server_settings(), random_bytes=seeded_random(1))
    client = EapPeer(
        "alice", password, eap_methods=PEAP_ONLY, peap=peer or peer_settings(), random_bytes=seeded_random(2)
    )
    return Conversation(server, client, USERS).run()


def peap_data(conversation: Conversation, sender: str) -> list[EapTlsData]:
    packets = [EapPacket.decode(p) for p in conversation.sent_by(sender)]
    return [EapTlsData.decode(p.data) for p in packets if p.type == EapType.PEAP]


# -- TLV codec --------------------------------------------------------------------------------------


def test_result_and_crypto_binding_tlvs_on_the_wire() -> None:
    binding = CryptoBinding(BindingSubType.REQUEST, bytes(range(32)), b"\xaa" * 20)
    encoded = Extensions(ResultStatus.SUCCESS, binding).encode()
    # Result TLV with the M bit (as Windows and hostapd send it), then the 60-byte Crypto-Binding TLV (M=0)
    assert encoded[:6] == bytes.fromhex("8003 0002 0001")
    assert encoded[6:14] == bytes.fromhex("000c 0038 00 00 00 00")
    assert len(encoded) == 6 + 60
    assert Extensions.decode(encoded) == Extensions(ResultStatus.SUCCESS, binding)
    assert Extensions.decode(bytes.fromhex("8003 0002 0002")) == Extensions(ResultStatus.FAILURE)


def test_unknown_tlvs_optional_skipped_mandatory_refused() -> None:
    result = bytes.fromhex("8003 0002 0001")
    assert Extensions.decode(bytes.fromhex("0007 0001 ff") + result) == Extensions(ResultStatus.SUCCESS)
    with pytest.raises(TlvError, match="mandatory TLV of unknown type 7"):
        Extensions.decode(bytes.fromhex("8007 0001 ff") + result)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "without a Result TLV"),
        (bytes.fromhex("8003 0002"), "2 announced|announced"),
        (bytes.fromhex("8003 0001 01"), "Result TLV of 1 bytes"),
        (bytes.fromhex("8003 0002 0003"), "unknown Status 3"),
        (bytes.fromhex("8003 0002 0001 8003 0002 0001"), "two Result TLVs"),
        (bytes.fromhex("8003 0002 0001 000c 0001 00"), "Crypto-Binding TLV of 1 bytes"),
        (bytes.fromhex("80 03 00"), "too few for a TLV header"),
    ],
)
def test_malformed_tlvs_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(TlvError, match=reason):
        Extensions.decode(data)


@given(st.binary(max_size=200))
def test_tlv_parser_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(TlvError):
        Extensions.decode(data)


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=70)), max_size=4))
def test_tlv_parser_on_well_framed_tlvs(tlvs: list[tuple[int, bytes]]) -> None:
    data = b"".join(t.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v for t, v in tlvs)
    try:
        decoded = Extensions.decode(data)
    except TlvError:
        return
    assert Extensions.decode(decoded.encode()) == decoded


def test_inner_packets_in_peapv0_form() -> None:
    # the method's packets travel without the EAP header; Extensions packets (and FreeRADIUS's Identity) with
    assert inner_packet(b"\x01", EapCode.REQUEST) == EapPacket(EapCode.REQUEST, 0, EapType.IDENTITY)
    assert inner_packet(b"\x1a\x01", EapCode.REQUEST) == EapPacket(EapCode.REQUEST, 0, 26, b"\x01")
    full = EapPacket(EapCode.REQUEST, 7, EapType.EXTENSIONS, bytes.fromhex("8003 0002 0001")).encode()
    assert inner_packet(full, EapCode.REQUEST) == EapPacket.decode(full)
    full_identity = EapPacket(EapCode.REQUEST, 9, EapType.IDENTITY).encode()
    assert inner_packet(full_identity, EapCode.REQUEST).identifier == 9


# -- keys -------------------------------------------------------------------------------------------


def test_prf_plus_is_ms_peap_formula() -> None:
    """MS-PEAP 3.1.5.5.2.2: T1 = HMAC-SHA1(K, S | 1 | 0 | 0), Tn = HMAC-SHA1(K, Tn-1 | S | n | 0 | 0)."""
    key, seed = b"k" * 40, b"Inner Methods Compound Keys" + b"i" * 32
    t1 = hmac.new(key, seed + b"\x01\x00\x00", hashlib.sha1).digest()
    t2 = hmac.new(key, t1 + seed + b"\x02\x00\x00", hashlib.sha1).digest()
    t3 = hmac.new(key, t2 + seed + b"\x03\x00\x00", hashlib.sha1).digest()
    assert peap_prf_plus(key, seed, 60) == t1 + t2 + t3
    ipmk, cmk = peap_compound_keys(b"k" * 60, b"i" * 32)
    assert (ipmk, cmk) == (t1 + t2[:20], t3)
    assert len(peap_msk(ipmk)) == 64


def test_hlak_is_the_compound_session_key_of_the_tunnel_and_inner_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Tunnel Key from the TLS 1.2 PRF (recomputed here from the master secret), the ISK from the
    inner MS-CHAPv2 keys; both ends reach the same HLAK, which is MSK[0:32] of MS-PEAP 3.1.5.7."""
    servers: list[PeapServer] = []

    class Recording(PeapServer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            servers.append(self)

    monkeypatch.setattr(eap_module, "PeapServer", Recording)
    conversation = talk()
    server, client = conversation.succeeded()
    assert server.hlak == client.hlak != ZERO_HLAK
    assert server.method is client.method is AuthMethod.PEAP
    connection = servers[0].tls.connection
    master, client_random, server_random = (
        connection.master_key(),
        connection.client_random(),
        connection.server_random(),
    )
    assert master is not None and client_random is not None and server_random is not None
    digest = "sha384" if (connection.get_cipher_name() or "").endswith("SHA384") else "sha256"
    tunnel_key = p_hash(digest, master, b"client EAP encryption" + client_random + server_random, 60)
    [question] = conversation.questions
    isk = LocalBackend(USERS).check(question).verdict.hlak
    ipmk, _cmk = peap_compound_keys(tunnel_key, isk)
    assert server.hlak == peap_msk(ipmk)[:32]


# -- conversations ----------------------------------------------------------------------------------


def test_success_both_sides() -> None:
    conversation = talk()
    server, client = conversation.succeeded()
    assert server.user == client.user == "alice"
    assert server.message == "PEAP with EAP-MSCHAPv2 (TLSv1.2)"
    [question] = conversation.questions
    assert question.user == "alice" and question.method is AuthMethod.PEAP
    # PEAPv0: Start carries version 0 and every packet after it keeps version 0
    server_data = peap_data(conversation, "server")
    assert server_data[0].flags == EapTlsFlags.START and server_data[0].version == 0
    assert all(d.version == 0 for d in server_data + peap_data(conversation, "client"))


def test_fragmented_tunnel() -> None:
    settings = PeapServerSettings(identity(lab().server), fragment_size=100)
    server = EapAuthenticator(eap_methods=PEAP_ONLY, peap=settings)
    client = EapPeer("alice", "alicepw", eap_methods=PEAP_ONLY, peap=peer_settings(fragment_size=100))
    conversation = Conversation(server, client, USERS).run()
    server_result, client_result = conversation.succeeded()
    assert server_result.hlak == client_result.hlak
    assert any(d.flags & EapTlsFlags.MORE_FRAGMENTS for d in peap_data(conversation, "server"))


def test_wrong_password_reason_on_both_sides() -> None:
    server, client = talk("wrong").failed()
    assert server.reason == "wrong password for user 'alice' (E=691)"
    assert client.reason == "wrong user name or password (E=691); server says 'Access denied'"
    assert client.error_code == 691


def test_untrusted_server_certificate_is_refused() -> None:
    server, client = talk(peer=peer_settings(trusted_cas=(lab().other_ca.certificate,))).failed()
    assert client.reason.startswith("server's EAP certificate refused: not signed by a trusted CA")
    assert "peer ended the PEAP handshake" in server.reason


def test_server_certificate_for_another_name_is_refused() -> None:
    _server, client = talk(peer=peer_settings(server_name="other.example.test")).failed()
    assert "certificate is not for 'other.example.test'" in client.reason


class OtherInnerMethod(PeapServer):
    """A server that runs EAP-MD5 inside the tunnel."""

    def _challenge(self) -> bytes:
        self._inner = type(self._inner).INNER_METHOD  # type: ignore[attr-defined]
        return self._seal(bytes([EapType.MD5_CHALLENGE, 16]) + bytes(16))


def test_unexpected_inner_method_is_naked_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapServer", OtherInnerMethod)
    server, client = talk().failed()
    assert server.reason == "peer refused EAP-MSCHAPv2 inside PEAP (it asked for EAP types 26)"
    assert client.reason == "server asked for EAP type 4 inside PEAP; we run only EAP-MSCHAPv2 there"


class BadMacPeer(PeapPeer):
    def _on_extensions(self, extensions: Extensions, tls: TlsConnection) -> Extensions:
        answer = super()._on_extensions(extensions, tls)
        assert answer.binding is not None
        mac = bytes(b ^ 1 for b in answer.binding.compound_mac)
        return Extensions(answer.result, CryptoBinding(BindingSubType.RESPONSE, answer.binding.nonce, mac))


def test_peer_with_bad_compound_mac_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapPeer", BadMacPeer)
    server, client = talk().failed()
    assert server.reason == (
        "peer's Crypto-Binding TLV is wrong: its Compound MAC does not match (not the same TLS tunnel and "
        "inner keys: a relay?)"
    )
    assert client.reason == "server refused our Crypto-Binding TLV or PEAP result (EAP-Failure)"


class BadMacServer(PeapServer):
    def _extensions(self, extensions: Extensions) -> bytes:
        if extensions.binding is not None:
            binding = extensions.binding
            bad = CryptoBinding(binding.subtype, binding.nonce, bytes(20))
            extensions = Extensions(extensions.result, bad)
        return super()._extensions(extensions)


def test_server_with_bad_compound_mac_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapServer", BadMacServer)
    server, client = talk().failed()
    assert client.reason.startswith("server's Crypto-Binding TLV is wrong: its Compound MAC does not match")
    assert (
        server.reason == "peer answered with a Result TLV Failure: it did not accept our Crypto-Binding TLV"
    )


class MalformedTlvPeer(PeapPeer):
    def _on_extensions(self, extensions: Extensions, tls: TlsConnection) -> Extensions:
        super()._on_extensions(extensions, tls)
        return BrokenExtensions(ResultStatus.SUCCESS)


class BrokenExtensions(Extensions):
    def encode(self) -> bytes:
        return bytes.fromhex("8003 0002 0001 000c 0005 0000000000")


def test_peer_with_malformed_tlv_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapPeer", MalformedTlvPeer)
    server, client = talk().failed()
    assert server.reason == "peer sent a malformed PEAP TLV (Crypto-Binding TLV of 5 bytes, not 56)"
    assert client.reason == "server refused our Crypto-Binding TLV or PEAP result (EAP-Failure)"


class MalformedTlvServer(PeapServer):
    def _extensions(self, extensions: Extensions) -> bytes:
        return EapPacket(EapCode.REQUEST, 1, EapType.EXTENSIONS, bytes.fromhex("8003 0002 0009")).encode()


def test_server_with_malformed_tlv_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapServer", MalformedTlvServer)
    conversation = talk()
    server, client = conversation.failed()
    assert client.reason == "server sent a malformed PEAP TLV (Result TLV with unknown Status 9)"
    assert "peer did not answer" in server.reason


class NoBindingPeer(PeapPeer):
    def _on_extensions(self, extensions: Extensions, tls: TlsConnection) -> Extensions:
        return Extensions(super()._on_extensions(extensions, tls).result)


def test_peer_without_crypto_binding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "PeapPeer", NoBindingPeer)
    server, _client = talk().failed()
    assert server.reason == "peer sent no Crypto-Binding TLV; PEAP without crypto binding is refused"


def test_peer_version_other_than_zero_is_refused() -> None:
    server = EapAuthenticator(eap_methods=PEAP_ONLY, peap=server_settings())
    server.start(0.0)
    [(_, identity_request)] = server.take_outgoing()
    request = EapPacket.decode(identity_request)
    server.receive(EapPacket(EapCode.RESPONSE, request.identifier, EapType.IDENTITY, b"alice").encode(), 0.0)
    [(_, start)] = server.take_outgoing()
    start_packet = EapPacket.decode(start)
    hello = EapTlsData(version=1, fragment=b"\x16\x03\x01").encode()
    server.receive(EapPacket(EapCode.RESPONSE, start_packet.identifier, EapType.PEAP, hello).encode(), 0.0)
    [event] = server.take_events()
    assert isinstance(event, AuthenticationFailed)
    assert event.reason == "peer speaks PEAP version 1; pysstp speaks PEAPv0 only"


def test_client_without_peap_naks_it() -> None:
    server = EapAuthenticator(eap_methods=PEAP_ONLY, peap=server_settings())
    client = EapPeer("alice", "alicepw")
    server_result, client_result = Conversation(server, client, USERS).run().failed()
    assert server_result.reason.startswith("peer accepts none of the EAP methods offered (PEAP)")
    assert client_result.reason == "server asked for PEAP, which this client runs only with --auth peap"


# -- whole links ------------------------------------------------------------------------------------


def test_link_comes_up_with_crypto_binding() -> None:
    conversation = LinkConversation.make(
        client_config(auth_methods=PEAP_ONLY, peap=peer_settings()),
        server_config(auth_methods=PEAP_ONLY, peap=server_settings()),
    )
    conversation.assert_up_with_binding("alice", AuthMethod.PEAP)


def test_link_wrong_password_reason_on_both_sides() -> None:
    conversation = LinkConversation.make(
        client_config(password="wrong", auth_methods=PEAP_ONLY, peap=peer_settings()),
        server_config(auth_methods=PEAP_ONLY, peap=server_settings()),
    )
    conversation.start()
    conversation.advance(10)
    assert "wrong password for user 'alice'" in conversation.down("server").reason
    assert "wrong user name or password (E=691)" in conversation.down("client").reason


def test_events_are_authenticated_only_once() -> None:
    conversation = talk()
    assert [type(e) for e in conversation.server_events] == [Authenticated]
    assert [type(e) for e in conversation.client_events] == [Authenticated]


# -- garbage ----------------------------------------------------------------------------------------


def _open_tunnel(*, identity_delivered: bool = False) -> tuple[PeapServer, PeapPeer]:
    """A server and a peer whose TLS tunnel is up: the server sealed the inner Identity request, and with
    ``identity_delivered`` the peer read it and the server's TLS read the answer (outside the machine,
    which still waits for it), so that records go on in sequence both ways."""
    server = PeapServer(server_settings(), "alice", "pysstp", seeded_random(1))
    peer = PeapPeer(peer_settings(), "alice", "alicepw", seeded_random(2))
    request: object = server.start()
    while not peer.tunnel_open or peer.framing.sending:
        assert isinstance(request, bytes)
        response = peer.handle(request)
        assert response is not None
        request = server.respond(response, 1)
    assert isinstance(request, bytes)
    if identity_delivered:
        answer = peer.handle(request)
        assert answer is not None
        assert server.tls.open(EapTlsData.decode(answer).fragment) == b"\x01alice"
    return server, peer


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=120), min_size=1, max_size=4))
def test_garbage_through_the_tunnel_never_raises(inner: list[bytes]) -> None:
    """Whatever the peer sends inside the tunnel, the server answers, refuses or asks; nothing raises
    but its own error (the authenticator counts that as a discarded packet)."""
    server, peer = _open_tunnel()
    assert peer.tls is not None
    for plaintext in inner:
        with contextlib.suppress(AuthError):
            server.respond(peer.framing.send(peer.tls.seal(plaintext)), 2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=120), min_size=1, max_size=4))
def test_garbage_from_the_server_through_the_tunnel_never_raises(inner: list[bytes]) -> None:
    server, peer = _open_tunnel(identity_delivered=True)
    for plaintext in inner:
        with contextlib.suppress(AuthError):
            peer.handle(server.framing.send(server.tls.seal(plaintext)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_garbage_type_data_never_raises(packets: list[bytes]) -> None:
    peer = EapPeer("alice", "alicepw", eap_methods=PEAP_ONLY, peap=peer_settings())
    feed_garbage(
        peer, [EapPacket(EapCode.REQUEST, i, EapType.PEAP, p).encode() for i, p in enumerate(packets)]
    )
    server = EapAuthenticator(eap_methods=PEAP_ONLY, peap=server_settings())
    server.start(0.0)
    server.receive(EapPacket(EapCode.RESPONSE, server._identifier, EapType.IDENTITY, b"alice").encode(), 0.0)
    for packet in packets:
        server.receive(EapPacket(EapCode.RESPONSE, server._identifier, EapType.PEAP, packet).encode(), 0.0)
        server.take_outgoing()
        server.take_events()


def test_an_acknowledgement_where_tunnel_data_belongs_is_refused() -> None:
    server, peer = _open_tunnel()
    answer = server.respond(peer.framing.ack, 2)
    assert isinstance(answer, Verdict) and not answer.success
    assert (
        answer.reason
        == "peer sent a malformed inner EAP packet in PEAP (empty inner EAP packet in the PEAP tunnel)"
    )
    server, peer = _open_tunnel()
    with pytest.raises(AuthError, match="empty inner EAP packet"):
        peer.handle(server.framing.ack)


def test_a_peap_client_naks_plain_eap_mschapv2() -> None:
    """With --auth peap the password proof goes only through the checked tunnel."""
    server = make_authenticator(
        AuthMethod.EAP_MSCHAP_V2,
        eap_methods=(AuthMethod.EAP_MSCHAP_V2, AuthMethod.PEAP),
        peap=server_settings(),
    )
    client = make_peer(AuthMethod.PEAP, "alice", "alicepw", peap=peer_settings())
    conversation = Conversation(server, client, USERS).run()
    server_result, client_result = conversation.succeeded()
    assert server_result.method is client_result.method is AuthMethod.PEAP
    naks = [EapPacket.decode(p) for p in conversation.sent_by("client")]
    assert any(p.type == EapType.NAK and p.data == bytes([EapType.PEAP]) for p in naks)


def test_capabilities_negotiation_is_naked() -> None:
    """Windows servers may ask for MS-PEAP's Capabilities Negotiation (a vendor type, sent with its EAP
    header, MS-PEAP 3.1.5.6) after the inner Identity; the peer declines with a Nak and goes on."""
    server, peer = _open_tunnel(identity_delivered=True)
    assert peer.tls is not None
    capabilities = EapPacket(EapCode.REQUEST, 5, 254, bytes.fromhex("000137 00000022 00000000")).encode()
    answer = peer.handle(server.framing.send(server.tls.seal(capabilities)))
    assert answer is not None
    assert server.tls.open(EapTlsData.decode(answer).fragment) == bytes([EapType.NAK, EapType.MSCHAP_V2])
    assert peer.abort is None and "254" not in peer.refusal()


def test_a_huge_announced_tls_message_is_refused_without_reading_it() -> None:
    """A peer announcing 4 GiB of TLS (or sending more than it announced) is refused at that packet: the
    length is never used to reserve memory (tls_tunnel.MAX_TLS_MESSAGE bounds any flight)."""
    server = PeapServer(server_settings(), "alice", "pysstp", seeded_random(1))
    server.start()
    huge = EapTlsData(EapTlsFlags.MORE_FRAGMENTS, 0xFFFFFFFF, b"\x16\x03\x01", version=0)
    with pytest.raises(AuthError, match="too long"):
        server.respond(huge.encode(), 1)
    liar = EapTlsData(EapTlsFlags.MORE_FRAGMENTS, 4, b"\x16\x03\x01", version=0)
    assert server.respond(liar.encode(), 2) == server.framing.ack
    with pytest.raises(AuthError, match="exceed the announced length"):
        server.respond(EapTlsData(fragment=b"\x00\x00", version=0).encode(), 3)
