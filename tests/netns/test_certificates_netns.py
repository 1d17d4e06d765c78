"""Certificates end to end (needs root): `pysstp pki` makes the CA, `pysstp server` and `pysstp connect` run
in their own network namespaces; EAP-TLS logins, and TLS client certificates in the HTTPS phase."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_client_netns import PYSSTP, SERVER_TUNNEL_IP, Setup, client_setup, ping, wait_until

from helpers.namespaces import Pair, netns_pair, run

__all__ = ["netns_pair"]


def make_pki(tmp_path: Path) -> Path:
    """The five-minute CA: the server's EAP certificate, alice, and bob who is revoked."""
    pki = tmp_path / "pki"
    for args in (("init",), ("server", "vpn"), ("user", "alice"), ("user", "bob"), ("revoke", "bob")):
        run(PYSSTP, "pki", *args, "--dir", str(pki))
    return pki


@contextlib.contextmanager
def eap_tls_server(netns_pair: Pair, tmp_path: Path, *extra: str) -> Iterator[Setup]:
    """The server with EAP-TLS only; its EAP certificate (not the HTTPS one), the CA and the CRL come from
    `pysstp pki`."""
    pki = make_pki(tmp_path)
    server_args = (
        "--auth", "eap-tls", "--eap-ca", str(pki / "ca.pem"), "--eap-crl", str(pki / "crl.pem"),
        "--eap-cert", str(pki / "vpn.pem"), "--eap-key", str(pki / "vpn.key"),
    )  # fmt: skip
    with client_setup(netns_pair, tmp_path, *server_args, *extra) as made:
        yield made


def eap_tls_client(setup: Setup, user: str) -> tuple[subprocess.Popen[str], Path]:
    """`pysstp connect --auth eap-tls` with ``user``'s certificate from `pysstp pki`."""
    pki = setup.tmp / "pki"
    return setup.start_client(
        "--pin-sha256", setup.pin, "--auth", "eap-tls",
        "--cert", str(pki / f"{user}.pem"), "--key", str(pki / f"{user}.key"),
        "--eap-ca", str(pki / "ca.pem"), "--eap-server-name", "vpn",
    )  # fmt: skip


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_eap_tls_login_and_traffic(netns_pair: Pair, tmp_path: Path, version: str) -> None:
    with eap_tls_server(netns_pair, tmp_path, "--eap-tls-max", version) as setup:
        process, log = eap_tls_client(setup, "alice")
        wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
        assert "EAP-TLS" in log.read_text()
        ping(setup.pair.client, SERVER_TUNNEL_IP)
        setup.stop(process, signal.SIGTERM, log)
        assert "alice" in (setup.tmp / "server.log").read_text()


def test_eap_tls_revoked_certificate_is_refused(netns_pair: Pair, tmp_path: Path) -> None:
    with eap_tls_server(netns_pair, tmp_path) as setup:
        eap_tls_revoked(setup)


def eap_tls_revoked(eap_tls: Setup) -> None:
    process, log = eap_tls_client(eap_tls, "bob")
    process.wait(30)
    assert process.returncode == 1, log.read_text()
    assert "server refused our certificate: sent TLS alert 'certificate revoked'" in log.read_text()
    server_log = eap_tls.tmp / "server.log"
    wait_until(
        lambda: "certificate revoked (CN=bob)" in server_log.read_text(), "the server's reason", server_log
    )


@pytest.fixture
def client_certificates(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    pki = make_pki(tmp_path)
    server_args = ("--verify-client-certificate", "require", "--client-ca", str(pki / "ca.pem"))
    with client_setup(netns_pair, tmp_path, *server_args) as made:
        yield made


def test_required_client_certificate_present(client_certificates: Setup) -> None:
    setup = client_certificates
    pki = setup.tmp / "pki"
    process, log = setup.start_client(
        "--pin-sha256", setup.pin, "--cert", str(pki / "alice.pem"), "--key", str(pki / "alice.key")
    )
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    ping(setup.pair.client, SERVER_TUNNEL_IP)
    setup.stop(process, signal.SIGTERM, log)


def test_required_client_certificate_absent(client_certificates: Setup) -> None:
    setup = client_certificates
    process, log = setup.start_client("--pin-sha256", setup.pin)
    process.wait(30)
    assert process.returncode == 1, log.read_text()
    assert "give yours with --cert FILE --key FILE" in log.read_text()
    server_log = setup.tmp / "server.log"
    wait_until(
        lambda: "refused: no TLS client certificate" in server_log.read_text(),
        "the server's reason",
        server_log,
    )
