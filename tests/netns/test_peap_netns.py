"""PEAP end to end (needs root): `pysstp server --auth peap` with the EAP certificate from `pysstp pki` and
`pysstp connect --auth peap` in their own network namespaces; traffic through the tunnel, and a wrong
password refused with the reason on both sides."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_certificates_netns import make_pki
from test_client_netns import SERVER_TUNNEL_IP, Setup, client_setup, ping, wait_until

from helpers.namespaces import Pair, netns_pair

__all__ = ["netns_pair"]


@pytest.fixture
def peap_server(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    """The server with PEAP only, showing the EAP certificate `pysstp pki` made for "vpn"."""
    pki = make_pki(tmp_path)
    server_args = ("--auth", "peap", "--eap-cert", str(pki / "vpn.pem"), "--eap-key", str(pki / "vpn.key"))
    with client_setup(netns_pair, tmp_path, *server_args) as made:
        yield made


def peap_client(setup: Setup) -> tuple[subprocess.Popen[str], Path]:
    """`pysstp connect --auth peap` as alice, checking the EAP certificate against the pki's CA."""
    pki = setup.tmp / "pki"
    return setup.start_client(
        "--pin-sha256",
        setup.pin,
        "--auth",
        "peap",
        "--eap-ca",
        str(pki / "ca.pem"),
        "--eap-server-name",
        "vpn",
    )


def test_peap_login_and_traffic(peap_server: Setup) -> None:
    process, log = peap_client(peap_server)
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    assert "PEAP" in log.read_text()
    ping(peap_server.pair.client, SERVER_TUNNEL_IP)
    peap_server.stop(process, signal.SIGTERM, log)
    assert "alice" in (peap_server.tmp / "server.log").read_text()


def test_peap_wrong_password_is_refused_on_both_sides(peap_server: Setup) -> None:
    (peap_server.tmp / "alice.pw").write_text("not-the-password\n")
    process, log = peap_client(peap_server)
    process.wait(30)
    assert process.returncode == 1, log.read_text()
    assert "authentication failed (E=691) with PEAP as 'alice'" in log.read_text()
    server_log = peap_server.tmp / "server.log"
    wait_until(
        lambda: "wrong password for user 'alice'" in server_log.read_text(), "the server's reason", server_log
    )
