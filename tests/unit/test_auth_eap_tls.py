"""EAP-TLS (RFC 5216, RFC 9190) in memory: both roles, TLS 1.2 and 1.3, fragmentation, every refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.aaa.local import StaticCredentials
from pysstp.errors import AuthError
from pysstp.ppp.auth.eap import EapAuthenticator, EapPacket, EapPeer
from pysstp.ppp.auth.eap_tls import EapTlsServerSettings, IdentitySource, certificate_identity
from pysstp.ppp.auth.keys import ZERO_HLAK, hlak_from_key_material
from pysstp.ppp.auth.tls_tunnel import EapTlsData, EapTlsFlags, TlsIdentity, TlsVersion
from pysstp.ppp.constants import AuthMethod, EapCode, EapType
from pysstp.ppp.events import Authenticated
from pysstp.sstp.binding import build_call_connected
from pysstp.sstp.constants import HashProtocol

from helpers.auth_wire import CLIENT, SERVER, Conversation, any_packets, feed_garbage, seeded_random
from helpers.certlab import VERSIONS, identity, lab, p_hash, peer_settings, server_settings
from helpers.conversation import Conversation as LinkConversation
from helpers.conversation import client_config, server_config

USERS = StaticCredentials({"alice": "alicepw"})
TLS_ONLY = (AuthMethod.EAP_TLS,)


def talk(
    version: TlsVersion = TlsVersion.TLS1_3,
    *,
    server: EapTlsServerSettings | None = None,
    peer: object = None,
    user: str = "alice",
) -> Conversation:
    server_tls = server or server_settings(max_version=version)
    peer_tls = peer or peer_settings(max_version=version)
    authenticator = EapAuthenticator(eap_methods=TLS_ONLY, eap_tls=server_tls, random_bytes=seeded_random(1))
    client = EapPeer(user, "", eap_methods=TLS_ONLY, eap_tls=peer_tls, random_bytes=seeded_random(2))  # type: ignore[arg-type]
    return Conversation(authenticator, client, USERS).run()


def tls_data(conversation: Conversation, sender: str) -> list[EapTlsData]:
    packets = [EapPacket.decode(p) for p in conversation.sent_by(sender)]
    return [EapTlsData.decode(p.data) for p in packets if p.type == EapType.TLS]


# -- codec ------------------------------------------------------------------------------------------


def test_codec() -> None:
    start = EapTlsData(EapTlsFlags.START)
    assert start.encode() == b"\x20"
    first = EapTlsData(EapTlsFlags.MORE_FRAGMENTS, 300, b"abc")
    assert first.encode() == bytes([0xC0, 0, 0, 1, 0x2C]) + b"abc"
    assert EapTlsData.decode(first.encode()) == first
    assert EapTlsData.decode(b"\x00") == EapTlsData() and EapTlsData().is_ack
    # EAP-TLS's reserved bits are PEAP's version (MS-PEAP 2.2.2): read, and never mistaken for flags
    assert EapTlsData.decode(b"\x07xy") == EapTlsData(fragment=b"xy", version=7)
    assert EapTlsData(EapTlsFlags.START, version=1).encode() == b"\x21"
    for bad in (b"", b"\x80\x00\x00"):
        with pytest.raises(AuthError):
            EapTlsData.decode(bad)


# -- success ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_success(version: TlsVersion) -> None:
    conversation = talk(version)
    server, client = conversation.succeeded()
    expected = f"EAP-TLS ({'TLSv1.3' if version is TlsVersion.TLS1_3 else 'TLSv1.2'})"
    assert server == Authenticated("alice", AuthMethod.EAP_TLS, server.hlak, expected)
    assert client == Authenticated("alice", AuthMethod.EAP_TLS, server.hlak, expected)
    assert len(server.hlak) == 32 and server.hlak != ZERO_HLAK
    # the exchange ends with the peer's empty acknowledgement of the server's last flight, then Success
    assert tls_data(conversation, CLIENT)[-1].is_ack
    assert EapPacket.decode(conversation.sent_by(SERVER)[-1]).code is EapCode.SUCCESS


def test_tls12_msk_is_the_prf_of_rfc_5216() -> None:
    server_tls = server_settings(max_version=TlsVersion.TLS1_2)
    authenticator = EapAuthenticator(eap_methods=TLS_ONLY, eap_tls=server_tls)
    peer = EapPeer("alice", "", eap_methods=TLS_ONLY, eap_tls=peer_settings(max_version=TlsVersion.TLS1_2))
    conversation = Conversation(authenticator, peer, USERS).run()
    server, _client = conversation.succeeded()
    connection = authenticator._tls.tls.connection  # type: ignore[union-attr]
    master, client_random, server_random = (
        connection.master_key(),
        connection.client_random(),
        connection.server_random(),
    )
    assert master is not None and client_random is not None and server_random is not None
    # the TLS 1.2 PRF uses the hash of the cipher suite (SHA-384 for the AES-256-GCM suites)
    cipher = connection.get_cipher_name() or ""
    digest = "sha384" if cipher.endswith("SHA384") else "sha256"
    msk = p_hash(digest, master, b"client EAP encryption" + client_random + server_random, 64)
    assert server.hlak == msk[:32]


def test_reference_eap_tls_vector_through_the_msk_to_hlak_path() -> None:
    """Reference §5.6 V3 (Windows 8.1 -> Windows Server 2019): HLAK = MSK[0:32] gives the captured MAC."""
    msk = bytes.fromhex(
        "BB2C17EDBAA643B3D511EB9848792B7CAB5F5D709FE9BDF89B5DEAF5A8C17DB7"
        "6DB2817CDC55AA42C3A1FF3389BE08E2EFFE8B2DC719074A43CFBB8ACF7414CE"
    )
    nonce = bytes.fromhex("388A1ECBF302BA02F9F372CE37488EC36B71A28B5E1B19FBE44D5465A631C463")
    cert_hash = bytes.fromhex("7FF150176FA8E38A1F402D11FF89FF11B66505AD7F9AE81205277BA4A6B9EF9D")
    hlak = hlak_from_key_material(msk)
    packet = build_call_connected(hlak, nonce, cert_hash, HashProtocol.SHA256)
    assert packet[80:] == bytes.fromhex("FE6473C7D183914E483FEA1B12A6E760A4DA16B62FAB12A0A1E54E0EC325B24E")


@pytest.mark.parametrize("version", VERSIONS)
def test_fragmentation_with_a_small_eap_mtu(version: TlsVersion) -> None:
    conversation = talk(
        version,
        server=server_settings(max_version=version, fragment_size=64),
        peer=peer_settings(max_version=version, fragment_size=64),
    )
    server, client = conversation.succeeded()
    assert server.hlak == client.hlak
    for sender in (SERVER, CLIENT):
        fragments = tls_data(conversation, sender)
        assert all(len(f.fragment) <= 64 for f in fragments)
        first_of_flights = [f for f in fragments if f.flags & EapTlsFlags.MORE_FRAGMENTS and f.message_length]
        assert first_of_flights, f"{sender} never fragmented"
        # a fragment with MORE_FRAGMENTS is always answered by an empty acknowledgement
        assert any(f.is_ack for f in tls_data(conversation, CLIENT if sender == SERVER else SERVER))


def test_lost_packets_are_retransmitted() -> None:
    server_tls = server_settings(fragment_size=200)
    authenticator = EapAuthenticator(eap_methods=TLS_ONLY, eap_tls=server_tls)
    peer = EapPeer("alice", "", eap_methods=TLS_ONLY, eap_tls=peer_settings(fragment_size=200))
    lost = {(SERVER, 3), (CLIENT, 4)}
    conversation = Conversation(authenticator, peer, USERS, drop=lambda who, i, _p: (who, i) in lost).run()
    server, client = conversation.succeeded()
    assert server.hlak == client.hlak


# -- identity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (IdentitySource.COMMON_NAME, "alice"),
        (IdentitySource.SAN_EMAIL, "alice@example.test"),
        (IdentitySource.SAN_UPN, "alice@corp.example.test"),
        (IdentitySource.SAN_DNS, None),
    ],
)
def test_certificate_identity(source: IdentitySource, expected: str | None) -> None:
    assert certificate_identity(lab().alice.certificate, source) == expected


def test_identity_comes_from_the_certificate_not_from_eap_identity() -> None:
    server, client = talk(
        server=server_settings(identity_source=IdentitySource.SAN_EMAIL), user="x"
    ).succeeded()
    assert server.user == "alice@example.test" and client.user == "x"


def test_known_user_required() -> None:
    server, _client = talk(server=server_settings(require_known_user=True)).succeeded()
    assert server.user == "alice"
    settings = server_settings(require_known_user=True, identity_source=IdentitySource.SAN_EMAIL)
    server_failure, client_failure = talk(server=settings).failed()
    assert server_failure.reason == "certificate user 'alice@example.test' is not in the user database"
    assert client_failure.reason == "server refused the EAP-TLS authentication (EAP-Failure)"


def test_certificate_without_the_configured_name() -> None:
    server, _client = talk(server=server_settings(identity_source=IdentitySource.SAN_DNS)).failed()
    assert server.reason == "client certificate (CN=alice) has no san-dns to name the user"


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("user", "server_says", "alert"),
    [
        ("revoked", "certificate revoked (CN=bob)", "certificate revoked"),
        ("expired", "certificate has expired (CN=carol)", "certificate expired"),
        ("stranger", "not signed by a trusted CA (CN=mallory)", "unknown ca"),
        ("wrong_purpose", "certificate not issued for this purpose", "unsupported certificate"),
    ],
)
def test_client_certificate_refused(version: TlsVersion, user: str, server_says: str, alert: str) -> None:
    certificate = getattr(lab(), user)
    server, client = talk(version, peer=peer_settings(certificate, max_version=version)).failed()
    assert server.method is client.method is AuthMethod.EAP_TLS
    assert server.reason.startswith("client certificate refused: " + server_says)
    assert client.reason == f"server refused our certificate: sent TLS alert {alert!r}"


@pytest.mark.parametrize("version", VERSIONS)
def test_server_certificate_not_trusted_by_the_client(version: TlsVersion) -> None:
    rogue = server_settings(max_version=version, identity=identity(lab().rogue_server))
    server, client = talk(version, server=rogue).failed()
    assert client.reason == (
        "server's EAP certificate refused: not signed by a trusted CA (CN=vpn.example.test)"
    )
    assert server.reason == "peer ended the EAP-TLS handshake: it sent TLS alert 'unknown ca'"


def test_server_name_checked_by_the_client() -> None:
    assert talk(peer=peer_settings(server_name="vpn.example.test")).succeeded()
    _server, client = talk(peer=peer_settings(server_name="other.example.test")).failed()
    assert client.reason == (
        "server's EAP certificate refused: certificate is not for 'other.example.test' "
        "(it names vpn.example.test)"
    )


def test_peer_without_a_certificate_naks_eap_tls() -> None:
    authenticator = EapAuthenticator(eap_methods=TLS_ONLY, eap_tls=server_settings())
    peer = EapPeer("alice", "alicepw", random_bytes=seeded_random(2))
    server, client = Conversation(authenticator, peer, USERS).run().failed()
    assert server.reason.startswith("peer accepts none of the EAP methods offered (EAP-TLS)")
    assert client.reason == "server asked for EAP-TLS, and no client certificate is configured"


def test_settings_are_checked() -> None:
    the_lab = lab()
    with pytest.raises(ValueError, match="does not belong"):
        TlsIdentity(the_lab.alice.certificate, the_lab.server.key)
    with pytest.raises(ValueError, match="at least one CA"):
        server_settings(trusted_cas=())
    with pytest.raises(ValueError, match="fragment size"):
        peer_settings(fragment_size=10)
    with pytest.raises(ValueError, match="certificate settings"):
        EapAuthenticator(eap_methods=TLS_ONLY)


# -- robustness -------------------------------------------------------------------------------------


def _tls_request(flags: int, body: bytes, identifier: int) -> bytes:
    return EapPacket(EapCode.REQUEST, identifier, EapType.TLS, bytes([flags]) + body).encode()


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        any_packets(),
        st.lists(
            st.builds(
                _tls_request,
                st.sampled_from([0x00, 0x20, 0x40, 0x80, 0xC0, 0xA0]),
                st.binary(max_size=80),
                st.integers(0, 255),
            ),
            max_size=8,
        ),
    )
)
def test_garbage_never_raises(packets: list[bytes]) -> None:
    peer = EapPeer("alice", "", eap_methods=TLS_ONLY, eap_tls=peer_settings(), random_bytes=seeded_random(4))
    feed_garbage(peer, packets)
    server = EapAuthenticator(eap_methods=TLS_ONLY, eap_tls=server_settings())
    server.start(0.0)
    # make the server expect EAP-TLS Responses, then feed it the same bytes as Responses
    server.receive(EapPacket(EapCode.RESPONSE, server._identifier, EapType.IDENTITY, b"alice").encode(), 0.0)
    feed_garbage(server, [bytes([2]) + p[1:] for p in packets])


def test_oversized_announced_length_is_discarded() -> None:
    peer = EapPeer("alice", "", eap_methods=TLS_ONLY, eap_tls=peer_settings())
    peer.receive(_tls_request(0x20, b"", 1), 0.0)
    peer.take_outgoing()
    peer.receive(_tls_request(0xC0, (10**6).to_bytes(4, "big") + b"x", 2), 0.0)
    assert peer.discarded == 1 and peer.take_outgoing() == []


# -- whole links ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_link_conversation_with_crypto_binding(version: TlsVersion) -> None:
    conversation = LinkConversation.make(
        client_config(password="", auth_methods=TLS_ONLY, eap_tls=peer_settings(max_version=version)),
        server_config(auth_methods=TLS_ONLY, eap_tls=server_settings(max_version=version)),
    )
    conversation.assert_up_with_binding("alice", AuthMethod.EAP_TLS)


def test_link_refused_certificate_reason_on_both_sides() -> None:
    conversation = LinkConversation.make(
        client_config(password="", auth_methods=TLS_ONLY, eap_tls=peer_settings(lab().revoked)),
        server_config(auth_methods=TLS_ONLY, eap_tls=server_settings()),
    )
    conversation.start()
    conversation.advance(10)
    assert "certificate revoked (CN=bob)" in conversation.down("server").reason
    assert "server refused our certificate: sent TLS alert 'certificate revoked'" in (
        conversation.down("client").reason
    )
