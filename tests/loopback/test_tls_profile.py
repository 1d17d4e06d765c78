"""The TLS suites a default `pysstp server` offers, as testssl.sh sees them: forward secrecy and AEAD only.

testssl.sh (Debian package ``testssl.sh``) scans a listener with the TLS context that
:func:`pysstp.server.build.load_tls` builds from the default settings, on 127.0.0.1 (no root needed).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysstp.server.build import load_tls
from pysstp.server.config import ServerSettings, TlsSettings
from pysstp.server.listener import describe_handshake_failure

from helpers.loopback import make_certificate

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")


def serve_tls(context: ssl.SSLContext) -> Iterator[int]:
    """Accept on 127.0.0.1 and run a TLS handshake with ``context`` on each connection (a thread each,
    as testssl.sh may leave one hanging); yields the port, stops when the generator is closed."""
    listener = socket.create_server(("127.0.0.1", 0))

    def handshake(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except OSError:  # ssl.SSLError included: a scanner's probe that finds no common suite
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            threading.Thread(target=handshake, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        # shutdown() wakes the blocked accept(); close() alone would not on Linux.
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join()


def offered_suites(tmp_path: Path, tls: TlsSettings) -> list[str]:
    """testssl.sh's line for each suite the server accepts (``-e``: every suite OpenSSL and testssl.sh
    know, tried one by one), e.g. ``xc02f ECDHE-RSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128 ...``."""
    assert TESTSSL is not None
    context, _ = load_tls(ServerSettings(tls=tls))
    report = tmp_path / "testssl.json"
    server = serve_tls(context)
    port = next(server)
    try:
        scan = subprocess.run(
            [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--each-cipher",
             "--jsonfile", str(report), f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.close()
    assert report.exists(), scan.stdout + scan.stderr
    findings = json.loads(report.read_text())
    return [" ".join(f["finding"].split()) for f in findings if f["id"].startswith("cipher_x")]


@pytest.mark.slow
@pytest.mark.skipif(TESTSSL is None, reason="needs testssl.sh (Debian package testssl.sh); CI installs it")
def test_default_server_offers_neither_cbc_nor_suites_without_forward_secrecy(tmp_path: Path) -> None:
    # An RSA certificate, so that suites with RSA key exchange could be chosen if they were offered.
    cert, key, _ = make_certificate(tmp_path, rsa_key=True)
    suites = offered_suites(tmp_path, TlsSettings(cert=cert, key=key))
    assert any("ECDHE-RSA-AES128-GCM-SHA256" in suite for suite in suites), suites
    for suite in suites:
        _code, _name, key_exchange, _bits, encryption, *_ = suite.split()
        assert key_exchange == "ECDH", f"no forward secrecy: {suite}"
        assert encryption in ("AESGCM", "ChaCha20"), f"not an AEAD suite: {suite}"


def test_a_client_with_only_cbc_suites_is_refused_and_the_log_names_the_legacy_profile(
    tmp_path: Path,
) -> None:
    cert, key, _ = make_certificate(tmp_path)
    server_context, _ = load_tls(ServerSettings(tls=TlsSettings(cert=cert, key=key)))
    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.check_hostname, old_client.verify_mode = False, ssl.CERT_NONE
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    old_client.set_ciphers("ECDHE-ECDSA-AES256-SHA")
    # Both ends in memory: the client's hello goes to the server, which must refuse it.
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = old_client.wrap_bio(client_in, client_out)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    server_in.write(client_out.read())
    with pytest.raises(ssl.SSLError) as refused:
        server.do_handshake()
    assert describe_handshake_failure(refused.value) == (
        logging.INFO,
        'no cipher in common (an old client may need tls.profile = "legacy")',
    )
    # The legacy profile serves that client.
    legacy, _ = load_tls(ServerSettings(tls=TlsSettings(cert=cert, key=key, profile="legacy")))
    assert "ECDHE-ECDSA-AES256-SHA" in {c["name"] for c in legacy.get_ciphers()}
