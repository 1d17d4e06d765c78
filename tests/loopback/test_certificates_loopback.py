"""Certificates over real TLS on 127.0.0.1 (no root): EAP-TLS logins, and TLS client certificates in the
HTTPS phase (the server's verify-client-certificate none/request/require)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.aaa.pki import Issued
from pysstp.aaa.userdb import UserEntry
from pysstp.client.dial import ConnectError, dial
from pysstp.client.login import ClientCertificate
from pysstp.client.settings import TlsSettings
from pysstp.client.tls import client_certificate_refusal, make_context
from pysstp.link import ClientConfig, LinkDown, LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.server.build import load_client_verification
from pysstp.server.config import ServerSettings
from pysstp.server.config import TlsSettings as ServerTlsSettings

from helpers.certlab import identity, lab, peer_settings, server_settings
from helpers.loopback import Bench, Client, start_bench

TLS_ONLY = (AuthMethod.EAP_TLS,)


def write_pair(directory: Path, name: str, issued: Issued) -> ClientCertificate:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.certificate_pem())
    key.write_bytes(issued.key_pem())
    return ClientCertificate(cert, key, None, identity(issued))


async def eap_tls_bench(tmp_path: Path) -> Bench:
    return await start_bench(
        tmp_path,
        configure=lambda config: dataclasses.replace(
            config, auth_methods=TLS_ONLY, eap_tls=server_settings(require_known_user=True)
        ),
    )


async def test_eap_tls_login(tmp_path: Path) -> None:
    bench = await eap_tls_bench(tmp_path)
    try:
        client = await bench.connect(password="", auth_methods=TLS_ONLY, eap_tls=peer_settings())
        await asyncio.wait_for(client.up.wait(), 10)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp) and up.user == "alice" and up.auth_method is AuthMethod.EAP_TLS
        [connection] = bench.app.connections
        assert connection.info.user == "alice"
        assert client.connection is not None
        client.connection.close()
    finally:
        await bench.app.shutdown()


async def test_eap_tls_user_keeps_the_fixed_address_from_the_user_database(tmp_path: Path) -> None:
    bench = await eap_tls_bench(tmp_path)
    fixed = IPv4Address("10.77.0.99")
    bench.app.backend.inner = LocalBackend(
        StaticCredentials({"alice": "alicepw"}),
        lambda name: UserEntry(name, bytes(16), address=fixed) if name == "alice" else None,
    )
    try:
        client = await bench.connect(password="", auth_methods=TLS_ONLY, eap_tls=peer_settings())
        await asyncio.wait_for(client.up.wait(), 10)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp) and up.local_address == fixed
        assert client.connection is not None
        client.connection.close()
    finally:
        await bench.app.shutdown()


async def test_eap_tls_revoked_user_is_refused(tmp_path: Path) -> None:
    bench = await eap_tls_bench(tmp_path)
    try:
        client = await bench.connect(password="", auth_methods=TLS_ONLY, eap_tls=peer_settings(lab().revoked))
        await asyncio.wait_for(client.down.wait(), 10)
        down = client.first(LinkDown)
        assert isinstance(down, LinkDown)
        assert "server refused our certificate: sent TLS alert 'certificate revoked'" in down.reason
    finally:
        await bench.app.shutdown()


async def client_cert_bench(tmp_path: Path, mode: str) -> Bench:
    bench = await start_bench(tmp_path, require_client_certificate=mode == "require")
    the_lab = lab()
    ca, crl = tmp_path / "users-ca.pem", tmp_path / "users-crl.pem"
    ca.write_bytes(the_lab.ca.certificate_pem())
    crl.write_bytes(the_lab.crl.public_bytes(serialization.Encoding.PEM))
    settings = ServerSettings(
        tls=ServerTlsSettings(verify_client_certificate=mode, client_ca=(ca,), client_crl=(crl,))  # type: ignore[arg-type]
    )
    load_client_verification(bench.app.ssl_context, settings)
    return bench


async def dial_with(
    bench: Bench, tmp_path: Path, user: Issued | None, max_version: ssl.TLSVersion | None = None
) -> tuple[Client, str | None]:
    """Dial with (or without) a TLS client certificate; the refusal text, if any."""
    certificate = write_pair(tmp_path, "user", user) if user is not None else None
    tls = TlsSettings(
        ca_file=bench.cert_path,
        cert=certificate.cert if certificate else None,
        key=certificate.key if certificate else None,
    )
    context = make_context(tls, certificate)
    if max_version is not None:
        context.maximum_version = max_version
    client = Client()
    try:
        client.connection = await dial(
            ClientConfig(host="sstp.test", username="alice", password="alicepw"),
            "127.0.0.1",
            bench.port,
            context,
            deliver=client.deliver,
            on_event=client.on_event,
            tls=tls,
        )
    except ConnectError as exc:
        return client, str(exc)
    done = asyncio.create_task(client.down.wait())
    await asyncio.wait(
        [asyncio.create_task(client.up.wait()), done], timeout=10, return_when="FIRST_COMPLETED"
    )
    down = next((e for e in client.events if isinstance(e, LinkDown)), None)
    return client, (down.reason if isinstance(down, LinkDown) else None)


async def test_required_client_certificate_present(tmp_path: Path) -> None:
    bench = await client_cert_bench(tmp_path, "require")
    try:
        client, refusal = await dial_with(bench, tmp_path, lab().alice)
        assert refusal is None and client.up.is_set()
    finally:
        await bench.app.shutdown()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_required_client_certificate_absent(
    tmp_path: Path, version: ssl.TLSVersion, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await client_cert_bench(tmp_path, "require")
    try:
        client, refusal = await dial_with(bench, tmp_path, None, version)
        assert refusal is not None and not client.up.is_set()
        assert refusal.endswith(
            "or it is one that requires a TLS client certificate (give yours with --cert FILE --key FILE)"
        )
        if version is ssl.TLSVersion.TLSv1_3:
            assert "refused: no TLS client certificate (verify-client-certificate = require)" in caplog.text
    finally:
        await bench.app.shutdown()


async def test_revoked_client_certificate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench = await client_cert_bench(tmp_path, "require")
    try:
        _client, refusal = await dial_with(bench, tmp_path, lab().revoked)
        assert refusal is not None
        # The server's TLS layer sends OpenSSL's alert, so the client can say why; the log says it too.
        assert refusal.endswith("the server refused our TLS client certificate: it is revoked")
        assert "127.0.0.1:" in caplog.text
        assert "TLS handshake failed: refused its TLS client certificate: certificate revoked" in caplog.text
    finally:
        await bench.app.shutdown()


async def test_requested_client_certificate_is_optional(tmp_path: Path) -> None:
    bench = await client_cert_bench(tmp_path, "request")
    try:
        client, refusal = await dial_with(bench, tmp_path, None)
        assert refusal is None and client.up.is_set()
    finally:
        await bench.app.shutdown()


@pytest.mark.parametrize(
    ("reason", "with_certificate", "expected"),
    [
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", False, "requires a TLS client certificate; give yours"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", False, "ended the handshake (handshake failure); if it requires"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", True, None),
        ("SSLV3_ALERT_CERTIFICATE_REVOKED", True, "refused our TLS client certificate: it is revoked"),
        ("TLSV1_ALERT_UNKNOWN_CA", True, "refused our TLS client certificate: it does not trust its CA"),
        ("TLSV1_ALERT_UNKNOWN_CA", False, None),
    ],
)
def test_alerts_from_servers_that_send_them(
    tmp_path: Path, reason: str, with_certificate: bool, expected: str | None
) -> None:
    certificate = write_pair(tmp_path, "alice", lab().alice) if with_certificate else None
    error = ssl.SSLError(1, reason)
    error.reason = reason
    tls = TlsSettings(cert=certificate.cert, key=certificate.key) if certificate else TlsSettings()
    refusal = client_certificate_refusal(error, tls)
    assert refusal == expected if expected is None else (refusal is not None and refusal.startswith(expected))
