"""Interop, tier 3 of issue 5: the real ``pysstp connect`` against sorz's sstp-server (``sstpd`` 0.7.2).

sstpd speaks SSTP and checks the crypto binding itself; its PPP comes from the pppd program it runs per
call, here pysstp's own server-side PPP (tests/helpers/pppd_standin.py), which hands sstpd the MPPE
keys the way ``sstp-pppd-plugin.so`` does (see tests/helpers/interop_sorz.py). Unlike SoftEther (tier 2),
sstpd refuses a call whose binding does not match those keys, so this tier is where our client's binding
is checked by a third-party implementation: SHA-256 (what sstpd and we prefer) and SHA-1 (sstpd made to
offer only that).
A corrupted binding is made by the stand-in handing sstpd other keys than the login produced.

Each test has its own sstpd in its own namespace (about 0.5 s to start); ``pysstp connect`` runs in that
namespace with a real TUN, and a ping to sstpd's PPP address crosses the tunnel (the stand-in answers it).
Each call takes about 3 s more than it needs: sstpd drops our first LCP Configure-Request, which arrives
before its pppd is running, and LCP's restart timer (3 s) sends it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.connect_process import (
    ConnectProcess,
    Dial,
    assert_tun_removed,
    start_connect,
    tun_addresses,
    wait_until,
)
from helpers.interop_sorz import (
    FIRST_REMOTE,
    LOCAL,
    PASSWORD,
    SERVER_NAME,
    USER,
    SorzServer,
    SorzUnavailable,
    check_available,
    running_sorz,
)

TUN = "sz0"
WRONG_HLAK = bytes(range(32))
HASHES = pytest.mark.parametrize("hash_name", ["SHA-256", "SHA-1"])
SSTPD_LOG_TIMEOUT = 20.0


@pytest.fixture(scope="module", autouse=True)
def available() -> None:
    """Skip the module, saying why, where sstpd cannot run."""
    try:
        check_available()
    except SorzUnavailable as exc:
        pytest.skip(f"sstp-server interop: {exc}")


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Removes every server a test started (and the clients in its namespace), also when it failed."""
    with contextlib.ExitStack() as stack:
        yield stack


def serve(stack: contextlib.ExitStack, hash_name: str, wrong_hlak: bytes | None = None) -> SorzServer:
    """A private sstpd for this test, offering only SHA-1 when that is the hash under test."""
    return stack.enter_context(running_sorz(sha1_only=hash_name == "SHA-1", wrong_hlak=wrong_hlak))


def connect(server: SorzServer, tmp_path: Path, *extra: str) -> ConnectProcess:
    """``pysstp connect`` as alice in the server's namespace, IPv4 only (sstpd's pppd does no IPv6CP)."""
    dial = Dial(server.namespace, server.port, USER, server.cert, SERVER_NAME, TUN)
    log = tmp_path / "client.log"
    return ConnectProcess(start_connect(dial, PASSWORD, log, "--no-ipv6", *extra), log)


def wait_for_sstpd(server: SorzServer, text: str) -> None:
    """sstpd logs ``text`` (within a few seconds; the deadline is generous for a loaded machine)."""
    wait_until(lambda: text in server.log_text(), f"sstpd to log {text!r}", server.log, SSTPD_LOG_TIMEOUT)


def cert_hash(server: SorzServer, hash_name: str) -> str:
    """The certificate hash sstpd logs when it checks a binding of this kind."""
    algorithm = hashlib.sha256 if hash_name == "SHA-256" else hashlib.sha1
    return algorithm(server.cert_der).hexdigest()


@HASHES
def test_binding_verified_and_ping_through_the_tunnel(
    stack: contextlib.ExitStack, tmp_path: Path, hash_name: str
) -> None:
    """sstpd verifies our binding with the keys from the stand-in; IPCP gives the first pool address; a
    ping to sstpd's end crosses TLS, sstpd, its pty and the stand-in, and back."""
    server = serve(stack, hash_name)
    client = connect(server, tmp_path)
    text = client.wait_connected()
    assert f"connected: {FIRST_REMOTE} via {TUN}, DNS none, MS-CHAPv2, {hash_name} binding" in text, text
    wait_for_sstpd(server, "Crypto Binding is valid.")
    log = server.log_text()
    assert "Connection established." in log
    # The hash sstpd received, and so checked, is the one the summary names.
    kind = hash_name.replace("-", "")
    assert f"Received Cert {kind}: {cert_hash(server, hash_name)}" in log, server.describe()
    (address,) = tun_addresses(server.namespace, TUN)
    assert (address["local"], address["address"]) == (FIRST_REMOTE, LOCAL)
    result = server.namespace.run("ping", "-c", "3", "-i", "0.2", "-W", "2", LOCAL, check=False)
    assert result.returncode == 0, result.stdout + result.stderr + client.text() + server.describe()
    assert client.stop() == 0, client.text()
    wait_for_sstpd(server, "Received call disconnect request.")
    assert_tun_removed(server.namespace, TUN)


@HASHES
def test_corrupted_binding_is_aborted_and_reported(
    stack: contextlib.ExitStack, tmp_path: Path, hash_name: str
) -> None:
    """The stand-in hands sstpd other keys than the login produced: sstpd finds our CMAC wrong and aborts;
    the client ends with one line that names the crypto binding, exit code 1, and leaves no TUN."""
    server = serve(stack, hash_name, wrong_hlak=WRONG_HLAK)
    client = connect(server, tmp_path)
    assert client.wait_exit() == 1, client.text()
    text = client.text()
    assert f"{hash_name} crypto binding sent (CALL_CONNECTED)" in text
    assert "connected: " not in text
    error = text.splitlines()[-1]
    assert error.startswith("pysstp: SSTP: the server did not accept our crypto binding"), text
    assert "invalid frame received" in error, error
    wait_for_sstpd(server, "Crypto Binding is invalid.")
    assert "Connection established." not in server.log_text()
    assert_tun_removed(server.namespace, TUN)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_harness_removes_everything(tmp_path: Path) -> None:
    """After a call, leaving the harness stops sstpd, every stand-in it ran and the client, by PID, and
    removes the namespace and the state directory."""
    with running_sorz() as server:
        client = connect(server, tmp_path)
        client.wait_connected()
        assert server.process is not None
        pids = [server.process.pid, client.process.pid]
        pids += [int(pid) for pid in re.findall(r"^\S+ \S+ (\d+) ", server.standin_log.read_text(), re.M)]
        namespace, state = server.namespace.name, server.state
    for pid in pids:
        assert not running(pid), f"process {pid} is still running"
    assert namespace not in os.listdir("/run/netns")
    assert not state.exists()
