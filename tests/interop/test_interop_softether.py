"""Interop, tier 2 of issue 5: the real ``pysstp connect`` against a real SoftEther VPN server.

The server is Debian's SoftEther 5.01 with the documented SSTP fix applied to a private copy (see
tests/helpers/softether.py), in its own network and mount namespace. One instance serves the whole module (it
starts in about a second, but each test would pay for it): calls do not depend on each other, and each
call gets the first lease again, because SoftEther gives every call of the same user the same virtual MAC
address, so SecureNAT's DHCP server finds that MAC's lease.

Each client is ``pysstp connect`` run inside the server's network namespace, dialing 127.0.0.1, with a
real TUN there, so a ping reaches SecureNAT's virtual gateway through the tunnel. Apart from the test
that checks the default (IPv6 offered), clients run with ``--no-ipv6``: SoftEther answers IPCP about 5 s
late while IPv6CP runs next to it, which would make every test that much slower.

SoftEther does not check the crypto binding, so these tests say nothing about
ours; tier 3 (sstp-server) does.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pysstp import dhcp

from helpers.connect_process import (
    ConnectProcess,
    Dial,
    assert_tun_removed,
    start_connect,
    tun_addresses,
    wait_until,
)
from helpers.softether import (
    HUB,
    PASSWORD,
    SECURENAT_FIRST_LEASE,
    SECURENAT_GATEWAY,
    SERVER_NAME,
    USER,
    SoftEther,
    SoftEtherUnavailable,
    running_softether,
)

TUN = "sse0"
STAY_UP = 60.0
"""The long test: three times SoftEther's 20 s silence limit, so only answered echo requests keep it up."""
# SoftEther's log lines that tie a call's TCP port to its hub session.
SSTP_SESSION_CREATED = re.compile(r"\[SSTP\] 127\.0\.0\.1:(\d+) -> \S+ \(TCP\): Session created\.")
HUB_SESSION = re.compile(
    r'The new session "([^"]+)" has been created\. \(IP address: [\d.]+, Port number: (\d+),'
)
SESSION_END_TIMEOUT = 30.0
"""How long SoftEther may take to end a hub session after its client has gone (it takes about a second)."""

SUMMARY = (
    f"connected: {SECURENAT_FIRST_LEASE} via {TUN}, DNS {SECURENAT_GATEWAY}, {{method}}, SHA-256 binding"
)


@pytest.fixture(scope="module")
def softether() -> Iterator[SoftEther]:
    """One private SoftEther for the module, removed afterwards whatever happens."""
    try:
        with running_softether() as server:
            yield server
    except SoftEtherUnavailable as exc:
        pytest.skip(f"SoftEther interop: {exc}")


@dataclass
class Client(ConnectProcess):
    """One ``pysstp connect`` in the server's namespace."""

    server: SoftEther
    server_log_start: int
    """Length of the server's log when this client started: what follows is about this client."""

    def server_lines(self) -> str:
        """What SoftEther logged about this client's call: the lines that name its TCP port or its hub
        session (the previous test's session may still be logging its end)."""
        lines = self.server.log_text()[self.server_log_start :].splitlines()
        port = next((m[1] for line in lines if (m := SSTP_SESSION_CREATED.search(line))), None)
        if port is None:
            return ""
        session = next((m[1] for line in lines if (m := HUB_SESSION.search(line)) and m[2] == port), None)
        # SoftEther names the port as "127.0.0.1:PORT", "Port number: PORT" or "port number PORT".
        mine = re.compile(rf"(127\.0\.0\.1:|port number:? ){port}\b", re.IGNORECASE)
        return "\n".join(
            line for line in lines if mine.search(line) or (session is not None and f'"{session}"' in line)
        )


@dataclass
class Clients:
    """Starts clients for one test; its fixture stops them all by PID afterwards."""

    server: SoftEther
    tmp: Path
    started: list[Client] = field(default_factory=list)

    def start(self, *extra: str, password: str = PASSWORD) -> Client:
        """Start ``pysstp connect`` as alice with ``extra`` flags; it trusts the server's certificate."""
        log = self.tmp / f"client{len(self.started)}.log"
        start = len(self.server.log_text())
        dial = Dial(self.server.namespace, self.server.port, USER, self.server.cert, SERVER_NAME, TUN)
        client = Client(start_connect(dial, password, log, *extra), log, self.server, start)
        self.started.append(client)
        return client


@pytest.fixture
def clients(softether: SoftEther, tmp_path: Path) -> Iterator[Clients]:
    """A test's clients, all stopped afterwards (also when the test failed)."""
    clients = Clients(softether, tmp_path)
    try:
        yield clients
    finally:
        # SIGTERM by PID, SIGKILL after 10 s; the server stays for the next test.
        softether.namespace.stop_all()
        softether.namespace.processes.clear()
        # SoftEther ends a call's hub session a moment after the TCP connection: until it has, SecureNAT
        # holds the call's address, and the next test's call (same user, same virtual MAC) would get the
        # next one. Hand the next test a hub with only SecureNAT's own session.
        deadline = time.monotonic() + SESSION_END_TIMEOUT
        while softether.session_count() > 1:
            assert time.monotonic() < deadline, "SoftEther kept a finished call's session"
            time.sleep(0.2)


@pytest.mark.parametrize(("flag", "method"), [("mschapv2", "MS-CHAPv2"), ("pap", "PAP")])
def test_authenticates(clients: Clients, flag: str, method: str) -> None:
    """SoftEther offers EAP first, then MS-CHAPv2, then PAP (each after a Nak): both methods get through."""
    client = clients.start("--auth", flag, "--no-ipv6")
    text = client.wait_connected()
    assert f"{method}: authenticated as {USER}" in text
    assert SUMMARY.format(method=method) in text
    # SoftEther makes the hub session only once PPP authentication has succeeded.
    assert 'The new session "SID-ALICE-[SSTP]-' in client.server_lines()
    assert client.stop() == 0, client.text()


def test_wrong_password_fails_with_e691(clients: Clients) -> None:
    client = clients.start("--no-ipv6", password="not-alicepw")
    assert client.wait_exit() == 1, client.text()
    text = client.text()
    # The one line a user reads (stderr, last): SoftEther's MS-CHAPv2 failure code and what it means.
    error = text.splitlines()[-1]
    assert error.startswith("pysstp: authentication failed"), text
    assert "E=691" in error and "MS-CHAPv2" in error and "wrong user name or password" in error, error
    assert "connected: " not in text
    assert_tun_removed(clients.server.namespace, TUN)


def test_ipcp_address_and_dns_from_securenat(clients: Clients) -> None:
    client = clients.start("--no-ipv6")
    text = client.wait_connected()
    assert (
        f"IPCP    address {SECURENAT_FIRST_LEASE}, server {SECURENAT_GATEWAY}, DNS {SECURENAT_GATEWAY}"
        in text
    )
    (address,) = tun_addresses(clients.server.namespace, TUN)
    assert (address["local"], address["address"], address["prefixlen"]) == (
        SECURENAT_FIRST_LEASE,
        SECURENAT_GATEWAY,
        32,
    )
    # SoftEther took the address from SecureNAT's virtual DHCP server on the client's behalf.
    assert (
        f"An IP address is assigned. IP Address of Client: {SECURENAT_FIRST_LEASE}" in client.server_lines()
    )
    assert client.stop() == 0, client.text()


def test_ping_securenat_gateway_through_the_tunnel(clients: Clients) -> None:
    client = clients.start("--no-ipv6")
    client.wait_connected()
    route = json.loads(clients.server.namespace.run("ip", "-j", "route", "get", SECURENAT_GATEWAY).stdout)
    assert route[0]["dev"] == TUN
    # The first echo can take most of a second (SecureNAT learns the client's MAC first), hence -W 3.
    result = clients.server.namespace.run(
        "ping", "-c", "3", "-i", "0.2", "-W", "3", SECURENAT_GATEWAY, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr + client.text()
    assert client.stop() == 0, client.text()


def test_clean_disconnect(clients: Clients) -> None:
    client = clients.start("--no-ipv6")
    client.wait_connected()
    assert client.stop() == 0, client.text()
    # SoftEther acknowledged our CALL_DISCONNECT in time (no fallback to dropping TCP) ...
    assert "did not confirm the disconnect" not in client.text()
    # ... and logged the end of the PPP session and of the hub session.
    wait_until(
        lambda: "The session has been terminated." in client.server_lines(),
        "SoftEther to log the session's end",
        clients.server.log,
        5.0,
    )
    lines = client.server_lines()
    assert 'upper-layer protocol "SSTP" has been disconnected' in lines
    assert "(TCP): Session deleted." in lines
    assert_tun_removed(clients.server.namespace, TUN)


def test_default_settings_with_ipv6_offered(clients: Clients) -> None:
    """Without --no-ipv6 the client also runs IPv6CP, which SoftEther accepts; IPv4 still comes up.

    SoftEther answers IPCP and IPv6CP late and in either order, so IPv6CP may open just after the summary
    line (which then names IPv4 only): wait for IPv6CP itself."""
    client = clients.start()
    text = client.wait_connected()
    assert f"connected: {SECURENAT_FIRST_LEASE}" in text
    wait_until(lambda: "IPv6CP  interface id" in client.text(), "IPv6CP to open", client.log, 15.0)
    assert client.stop() == 0, client.text()


@pytest.mark.slow
def test_slow_stays_connected_60s_answering_softether_echoes(clients: Clients) -> None:
    """SLOW (~60 s, on purpose): SoftEther sends an SSTP echo request every 2.5-4.8 s and drops a call it
    has heard nothing from for 20 s. Nothing else crosses this tunnel (IPv4 only, no traffic), so only the
    client's echo responses keep it up for three times that long."""
    client = clients.start("--no-ipv6")
    client.wait_connected()
    end = time.monotonic() + STAY_UP
    while time.monotonic() < end:
        assert client.process.poll() is None, f"pysstp connect exited:\n{client.text()}"
        time.sleep(1.0)
    text, lines = client.text(), client.server_lines()
    assert "was lost" not in text and "ended the call" not in text and "dialing again" not in text, text
    assert "The PPP session is disconnected" not in lines
    assert lines.count("(TCP): Session created.") == 1  # the same call all along
    assert clients.server.session_count() == 2  # SecureNAT's and this call's
    # The tunnel still carries traffic after the minute.
    result = clients.server.namespace.run("ping", "-c", "1", "-W", "3", SECURENAT_GATEWAY, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert client.stop() == 0, client.text()


# SecureNAT's DHCP server set up as issue 14 describes: no default gateway, a domain, one pushed route.
PUSHED_NETWORK = "10.99.0.0/16"
DHCP_PUSH = (
    "DhcpSet /START:192.168.30.10 /END:192.168.30.200 /MASK:255.255.255.0 /EXPIRE:7200 /GW:none "
    f"/DNS:{SECURENAT_GATEWAY} /DNS2:none /DOMAIN:corp.example /LOG:yes "
    f'/PUSHROUTE:"10.99.0.0/255.255.0.0/{SECURENAT_GATEWAY}"'
)
DHCP_DEFAULT = (
    "DhcpSet /START:192.168.30.10 /END:192.168.30.200 /MASK:255.255.255.0 /EXPIRE:7200 "
    # An empty value after the colon clears a setting ("" is refused as an invalid parameter).
    f"/GW:{SECURENAT_GATEWAY} /DNS:{SECURENAT_GATEWAY} /DNS2:none /DOMAIN: /LOG:yes /PUSHROUTE:"
)
WINDOWS_INFORM = """
import socket, sys
from ipaddress import IPv4Address
from pysstp import dhcp
ifname, address = sys.argv[1], IPv4Address(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind((str(address), dhcp.CLIENT_PORT))
s.settimeout(3)
inform = dhcp.build(dhcp.windows_inform(0x5A1C3E07, address, bytes.fromhex("0250f2000003"), "DESKTOP"))
for _ in range(3):
    s.sendto(inform, ("255.255.255.255", dhcp.SERVER_PORT))
    try:
        print(s.recv(4096).hex())
        break
    except TimeoutError:
        continue
"""


def test_securenat_answers_a_windows_inform_and_the_client_applies_its_routes(clients: Clients) -> None:
    """SoftEther's SecureNAT answers DHCPINFORM itself (docs/interop.md): our Windows-like INFORM gets
    options 1, 6, 15, 54, 121 and 249, and pysstp connect takes the pushed route."""
    server = clients.server
    server.vpncmd(DHCP_PUSH, hub=HUB)
    try:
        client = clients.start("--no-ipv6")
        client.wait_connected()
        wait_until(lambda: "(from the server)" in client.text(), "the pushed route", client.log, 15.0)
        assert f"route: {PUSHED_NETWORK} via {TUN} (from the server)" in client.text()
        route = json.loads(server.namespace.run("ip", "-j", "route", "get", "10.99.1.1").stdout)
        assert route[0]["dev"] == TUN
        result = server.namespace.run(
            sys.executable, "-c", WINDOWS_INFORM, TUN, SECURENAT_FIRST_LEASE, check=False
        )
        assert result.stdout.strip(), result.stdout + result.stderr + client.text()
        ack = dhcp.parse(bytes.fromhex(result.stdout.strip()))
        assert ack.message_type is dhcp.MessageType.ACK
        codes = {code for code, _ in ack.options}
        assert {1, 6, 15, 54, 121, 249} <= codes, sorted(codes)
        configuration = dhcp.configuration(ack)
        assert configuration.domain == "corp.example"
        # SecureNAT adds a route to its own subnet when it has no default gateway to give (docs/interop.md).
        assert [(str(r.network), str(r.router)) for r in configuration.routes] == [
            (PUSHED_NETWORK, SECURENAT_GATEWAY),
            ("192.168.30.0/24", SECURENAT_GATEWAY),
        ]
        assert ack.option(121) == ack.option(249)
        assert "route: 192.168.30.0/24 via" in client.text()
        assert client.stop() == 0, client.text()
    finally:
        server.vpncmd(DHCP_DEFAULT, hub=HUB)
