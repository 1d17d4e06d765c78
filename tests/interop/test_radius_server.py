"""`pysstp server` with ``backend = "radius"`` in a namespace, FreeRADIUS 3.2 in another behind it, and
`pysstp connect` in a third: MS-CHAPv2, EAP-MSCHAPv2 and PEAP (passed through to FreeRADIUS) come up and ping,
the address comes from Framed-IP-Address, and a wrong password reaches the client as E=691."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pysstp.aaa.pki import issue_user

from helpers import certlab
from helpers.connect_process import PYSSTP, ConnectProcess, tun_addresses, wait_until
from helpers.freeradius import SECRET, FreeRadius, RadiusHost, RadiusUser, detail_records, radius_host_behind
from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair
from helpers.server_process import start_server

__all__ = ["netns_pair"]

PORT = "8443"
SERVER_TUN = "sstp-r0"
CLIENT_TUN = "sstpc-r0"
SERVER_TUNNEL_IP = "10.77.0.1"
ALICE_ADDRESS = "10.77.0.50"
DAVE_CLASS = "0x646176652d636c617373"
ERIN_DNS = ("192.0.2.53", "192.0.2.54")
ERIN_MTU = 1300
NAMED_POOL_NAME = "office"
NAMED_POOL = "10.78.0.0/24"
LOCKED = "Account locked until Monday"
SERVER_PREFIX = "fd77:77::/64"
GINA_PREFIX = "fd99:99::/64"
USERS = (
    RadiusUser(
        "alice",
        "alice-password",
        reply=(f"Framed-IP-Address = {ALICE_ADDRESS}", "Acct-Interim-Interval = 1", "Class = 0x6b6c617373"),
    ),
    RadiusUser("bob", "bob-password", nt_only=True),
    RadiusUser(
        "carol",
        "carol-password",
        reply=('Framed-Route = "192.168.77.0/24 0.0.0.0 1"', "Session-Timeout = 3"),
    ),
    # FreeRADIUS starts with its default_eap_type (EAP-MSCHAPv2) unless the user says otherwise.
    RadiusUser("tls-user", check=("EAP-Type := TLS",)),
    # Offered EAP-MSCHAPv2 first, a `--auth peap` client Naks it for PEAP; inside, FreeRADIUS' inner-tunnel
    # runs EAP-MSCHAPv2 against this password.
    RadiusUser("peap-user", "peap-password"),
    RadiusUser("dave", "dave-password", reply=("Idle-Timeout = 2", f"Class = {DAVE_CLASS}")),
    RadiusUser(
        "erin",
        "erin-password",
        reply=(
            f"MS-Primary-DNS-Server = {ERIN_DNS[0]}",
            f"MS-Secondary-DNS-Server = {ERIN_DNS[1]}",
            f"Framed-MTU = {ERIN_MTU}",
        ),
    ),
    RadiusUser("frank", "frank-password", reply=(f'Framed-Pool = "{NAMED_POOL_NAME}"',)),
    RadiusUser("gina", "gina-password", reply=(f"Framed-IPv6-Prefix = {GINA_PREFIX}",)),
    RadiusUser(
        "mallory", "mallory-password", check=("Auth-Type := Reject",), reply=(f'Reply-Message = "{LOCKED}"',)
    ),
)


@dataclass
class Setup:
    pair: Pair
    radius: RadiusHost
    freeradius: FreeRadius
    tmp: Path
    cert: Path
    key: Path

    def start_server(self, *extra: str) -> Path:
        secret = self.tmp / "radius.secret"
        secret.write_bytes(SECRET + b"\n")
        log = self.tmp / "server.log"
        start_server(
            self.pair.server, log,
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.tmp / "users.toml"),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24",
            "--tun-name", SERVER_TUN, "--control-socket", str(self.tmp / "ctl.sock"),
            "--backend", "radius", "--radius-server", f"{self.freeradius.address}:{self.freeradius.port}",
            "--radius-secret-file", str(secret), "--nas-identifier", "vpn-e2e", "--log-level", "debug",
            "--radius-accounting-spool", str(self.tmp / "accounting.spool"),
            *extra,
        )  # fmt: skip
        return log

    def connect(self, user: str, password: str, auth: str, *extra: str) -> ConnectProcess:
        log = self.tmp / f"client-{user}.log"
        password_file = self.tmp / f"{user}.pw"
        password_file.write_text(password + "\n")
        process: subprocess.Popen[str] = self.pair.client.start(
            [
                PYSSTP, "connect", f"{self.pair.server_ip}:{PORT}", "--user", user,
                "--password-file", str(password_file), "--ca-file", str(self.cert), "--sni", "sstp.test",
                "--ifname", CLIENT_TUN, "--auth", auth, *extra,
            ],
            log,
        )  # fmt: skip
        return ConnectProcess(process, log)


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    cert, key, _der = make_certificate(tmp_path)
    with radius_host_behind(netns_pair.server) as radius:
        freeradius = radius.freeradius(tmp_path / "raddb", USERS)
        yield Setup(netns_pair, radius, freeradius, tmp_path, cert, key)


def ping(setup: Setup, address: str) -> None:
    result = setup.pair.client.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mschapv2_through_freeradius_comes_up_with_its_address(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2")
    client = setup.connect("alice", "alice-password", "mschapv2")
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert [a["local"] for a in tun_addresses(setup.pair.client, CLIENT_TUN)] == [ALICE_ADDRESS]
    assert "radius backend" in server_log.read_text()
    assert 'NAS-Identifier = "vpn-e2e"' in setup.freeradius.describe()


def test_eap_mschapv2_passed_through_to_freeradius(setup: Setup) -> None:
    setup.start_server("--auth", "eap-mschapv2", "--eap-mode", "pass-through")
    client = setup.connect("bob", "bob-password", "eap-mschapv2")
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert "eap_mschapv2: Issuing Challenge" in setup.freeradius.describe()


def test_wrong_password_reaches_the_client_as_e691(setup: Setup) -> None:
    setup.start_server("--auth", "mschapv2")
    client = setup.connect("alice", "not-the-password", "mschapv2")
    assert client.wait_exit() != 0
    assert "E=691" in client.text()


def test_eap_tls_passed_through_to_freeradius(setup: Setup) -> None:
    lab = certlab.lab()
    user = issue_user(lab.ca, "tls-user")
    cert, key, ca = setup.tmp / "tls-user.pem", setup.tmp / "tls-user.key", setup.tmp / "lab-ca.pem"
    cert.write_bytes(user.certificate_pem())
    key.write_bytes(user.key_pem())
    key.chmod(0o600)
    ca.write_bytes(lab.ca.certificate_pem())
    setup.start_server("--auth", "eap-tls", "--eap-mode", "pass-through")
    client = setup.connect(
        "tls-user", "", "eap-tls", "--cert", str(cert), "--key", str(key), "--eap-ca", str(ca)
    )
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert "eap_tls: (TLS) recv TLS 1.2 Handshake, CertificateVerify" in setup.freeradius.describe()


def test_peap_passed_through_to_freeradius(setup: Setup) -> None:
    """An independent PEAP server: the tunnel, the inner EAP-MSCHAPv2 in PEAPv0's form, the Result TLV
    and the keys (FreeRADIUS sends no Crypto-Binding TLV, so the MSK is the outer TLS key material's)
    agree with ours, or the SSTP crypto binding would fail."""
    ca = setup.tmp / "lab-ca.pem"
    ca.write_bytes(certlab.lab().ca.certificate_pem())
    setup.start_server("--auth", "peap", "--eap-mode", "pass-through")
    client = setup.connect("peap-user", "peap-password", "peap", "--eap-ca", str(ca))
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    described = setup.freeradius.describe()
    assert "eap_peap" in described and "eap_mschapv2" in described


def test_peap_wrong_password_through_freeradius(setup: Setup) -> None:
    ca = setup.tmp / "lab-ca.pem"
    ca.write_bytes(certlab.lab().ca.certificate_pem())
    setup.start_server("--auth", "peap", "--eap-mode", "pass-through")
    client = setup.connect("peap-user", "wrong", "peap", "--eap-ca", str(ca))
    assert client.wait_exit() != 0
    assert "with PEAP as 'peap-user'" in client.text()


def tun_counters(setup: Setup) -> dict[str, int]:
    """The client TUN's byte counters: ``tx`` went into the tunnel, ``rx`` came out of it."""
    (link,) = json.loads(setup.pair.client.run("ip", "-j", "-s", "link", "show", "dev", CLIENT_TUN).stdout)
    return {"tx": link["stats64"]["tx"]["bytes"], "rx": link["stats64"]["rx"]["bytes"]}


def test_accounting_of_a_session_lands_in_the_detail_file(setup: Setup) -> None:
    setup.start_server("--auth", "mschapv2")
    detail = setup.freeradius.detail
    client = setup.connect("alice", "alice-password", "mschapv2")
    client.wait_connected()
    result = setup.pair.client.run(
        "ping", "-c", "50", "-i", "0.01", "-s", "1200", SERVER_TUNNEL_IP, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def statuses() -> list[str]:
        return [r["Acct-Status-Type"] for r in detail_records(detail)]

    wait_until(lambda: "Interim-Update" in statuses(), "an Interim-Update", setup.freeradius.log)
    sent = tun_counters(setup)
    assert client.stop() == 0
    wait_until(lambda: "Stop" in statuses(), "the Stop record", setup.freeradius.log)
    by_status = {r["Acct-Status-Type"]: r for r in detail_records(detail)}
    assert {"Accounting-On", "Start", "Interim-Update", "Stop"} <= set(by_status)
    start, stop = by_status["Start"], by_status["Stop"]
    assert start["Acct-Session-Id"] == stop["Acct-Session-Id"] != ""
    assert start["Framed-IP-Address"] == ALICE_ADDRESS
    assert stop["Class"] == "0x6b6c617373"
    assert stop["Acct-Terminate-Cause"] == "User-Request"
    assert stop["NAS-Identifier"] == "vpn-e2e"
    for name, counter in (("Acct-Input-Octets", "tx"), ("Acct-Output-Octets", "rx")):
        assert abs(int(stop[name]) - sent[counter]) <= sent[counter] / 100, (name, stop[name], sent)
    setup.pair.server.processes[0].terminate()
    setup.pair.server.processes[0].wait(20)
    wait_until(lambda: "Accounting-Off" in statuses(), "Accounting-Off", setup.freeradius.log)


def test_framed_route_and_session_timeout_take_effect(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2")
    client = setup.connect("carol", "carol-password", "mschapv2")
    client.wait_connected()
    routes = setup.pair.server.run("ip", "route", "show", "192.168.77.0/24").stdout
    assert f"dev {SERVER_TUN}" in routes, routes
    wait_until(lambda: "session timeout (3 s)" in server_log.read_text(), "the session timeout", server_log)
    client.wait_exit()
    detail = setup.freeradius.detail
    wait_until(
        lambda: any(r["Acct-Status-Type"] == "Stop" for r in detail_records(detail)), "the Stop", server_log
    )
    (stop,) = [r for r in detail_records(detail) if r["Acct-Status-Type"] == "Stop"]
    assert stop["Acct-Terminate-Cause"] == "Session-Timeout"


def stop_records(setup: Setup) -> list[dict[str, str]]:
    return [r for r in detail_records(setup.freeradius.detail) if r["Acct-Status-Type"] == "Stop"]


def test_idle_timeout_ends_an_idle_session_and_class_is_in_its_accounting(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2")
    client = setup.connect("dave", "dave-password", "mschapv2")
    client.wait_connected()
    client.wait_exit()
    assert "idle for 2 s; disconnecting" in server_log.read_text()
    wait_until(lambda: stop_records(setup), "the Stop", setup.freeradius.log)
    (stop,) = stop_records(setup)
    assert stop["Acct-Terminate-Cause"] == "Idle-Timeout"
    (start,) = [r for r in detail_records(setup.freeradius.detail) if r["Acct-Status-Type"] == "Start"]
    assert start["Class"] == stop["Class"] == DAVE_CLASS


def test_ms_dns_servers_reach_the_client_and_framed_mtu_caps_the_session(setup: Setup) -> None:
    setup.start_server("--auth", "mschapv2", "--dns", "192.0.2.1")
    client = setup.connect("erin", "erin-password", "mschapv2")
    text = client.wait_connected()
    assert f"DNS {ERIN_DNS[0]}, {ERIN_DNS[1]}" in text, text
    ping(setup, SERVER_TUNNEL_IP)
    status = setup.pair.server.run(PYSSTP, "status", "--socket", str(setup.tmp / "ctl.sock"), "--json")
    (session,) = json.loads(status.stdout)["sessions"]
    assert (session["user"], session["mtu"]) == ("erin", ERIN_MTU)


def test_framed_pool_takes_the_address_from_the_named_pool(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2", "--named-pool", f"{NAMED_POOL_NAME}={NAMED_POOL}")
    routes = setup.pair.server.run("ip", "route", "show", NAMED_POOL).stdout
    assert f"dev {SERVER_TUN}" in routes, routes
    client = setup.connect("frank", "frank-password", "mschapv2")
    client.wait_connected()
    assert [a["local"] for a in tun_addresses(setup.pair.client, CLIENT_TUN)] == ["10.78.0.1"]
    ping(setup, SERVER_TUNNEL_IP)
    assert client.stop() == 0
    setup.pair.server.processes[0].terminate()
    setup.pair.server.processes[0].wait(20)
    # The pool's route went with the server.
    assert setup.pair.server.run("ip", "route", "show", NAMED_POOL).stdout == ""
    assert "Traceback" not in server_log.read_text()


def test_reply_message_of_a_reject_reaches_the_client(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2")
    client = setup.connect("mallory", "mallory-password", "mschapv2")
    assert client.wait_exit() != 0
    assert LOCKED in client.text()
    assert LOCKED in server_log.read_text()


def test_framed_ipv6_prefix_is_the_prefix_the_client_forms_its_address_in(setup: Setup) -> None:
    setup.start_server("--auth", "mschapv2", "--ipv6", SERVER_PREFIX)
    client = setup.connect("gina", "gina-password", "mschapv2", "--default-route")
    # The summary waits for the address the client's kernel formed from the router advertisement.
    text = client.wait_connected()
    found = re.search(r"connected: 10\.77\.0\.\d+ and (fd99:99::[0-9a-f:]+) via ", text)
    assert found is not None, text
    routes = setup.pair.server.run("ip", "-6", "route", "show", GINA_PREFIX).stdout
    assert f"dev {SERVER_TUN}" in routes, routes
    # Both ways through the tunnel: from the prefix's address to the server's, and back.
    result = setup.pair.client.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", "fd77:77::1", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    result = setup.pair.server.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", found[1], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
