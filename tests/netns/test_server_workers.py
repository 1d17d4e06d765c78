"""``pysstp server --workers 2``: a supervisor and two worker processes in one namespace, tunnel clients
in others (needs root). Which worker takes a call is the kernel's choice; the tests that need a call on a
given worker stop the other one (SIGSTOP) while that call is accepted."""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import (
    Namespace,
    Pair,
    attach_lan,
    delete_namespace,
    netns_pair,
    network_state,
    run,
    wait_for_text,
)
from helpers.server_process import TUNNEL_CLIENT, add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"
TUN = "sstp-w"
SERVER_TUNNEL_IP = "10.77.0.1"
METRICS = "127.0.0.1:9150"
DEADLINE = 30.0
"""Seconds any awaited state may take (a worker restarts in about 1 s plus its start-up)."""

_GET = """\
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""

_STORM = """\
import asyncio, json, ssl, sys
from pysstp.client.dial import dial
from pysstp.link import ClientConfig, LinkUp
async def main(host, port, cafile, count):
    context = ssl.create_default_context(cafile=cafile)
    config = ClientConfig(host="sstp.test", username="storm", password="stormpw")
    addresses = []
    async def one():
        up = asyncio.get_running_loop().create_future()
        def on_event(_c, event):
            if isinstance(event, LinkUp) and not up.done():
                up.set_result(str(event.local_address))
        connection = await dial(config, host, port, context, deliver=lambda _c, _p: None, on_event=on_event)
        addresses.append(await asyncio.wait_for(up, 60))
        return connection
    connections = await asyncio.gather(*(one() for _ in range(count)))
    print(json.dumps(addresses), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for connection in connections:
        connection.close("storm over")
    await asyncio.sleep(1)
asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
"""


@dataclass
class Workers:
    pair: Pair
    tmp: Path
    cert: Path
    users: Path
    server: subprocess.Popen[str] | None = None

    @property
    def log(self) -> Path:
        return self.tmp / "server.log"

    def start_server(self, *extra: str) -> None:
        key = self.cert.with_name("key.pem")
        self.server = start_server(
            self.pair.server, self.log,
            "--cert", str(self.cert), "--key", str(key), "--users", str(self.users),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24",
            "--tun-name", TUN, "--control-socket", str(self.tmp / "ctl.sock"), "--workers", "2",
            "--state-dir", str(self.tmp / "state"), *extra,
        )  # fmt: skip

    def worker_pid(self, index: int) -> int:
        """The PID of worker ``index``'s latest start, from the supervisor's log."""
        started = re.findall(rf"worker {index} started \(pid (\d+)\)", self.log.read_text())
        assert started, self.log.read_text()
        return int(started[-1])

    def start_client(
        self, ns: Namespace, server_ip: str, name: str, user: str, password: str, *extra: str
    ) -> Path:
        log = self.tmp / f"client-{name}.log"
        start_tunnel_client(ns, log, server_ip, PORT, self.cert, user, password, "auto", name, *extra)
        return log

    def status(self) -> list[dict[str, object]]:
        result = self.pair.server.run(
            PYSSTP, "status", "--json", "--socket", str(self.tmp / "ctl.sock"), check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        rows: list[dict[str, object]] = json.loads(result.stdout)["sessions"]
        return rows

    def wait_for_sessions(self, count: int) -> list[dict[str, object]]:
        deadline = time.monotonic() + DEADLINE
        while True:
            rows = [row for row in self.status() if row["up"]]
            if len(rows) == count:
                return rows
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)


@pytest.fixture
def workers(netns_pair: Pair, tmp_path: Path) -> Iterator[Workers]:
    cert, key, _ = make_certificate(tmp_path)
    key.rename(cert.with_name("key.pem"))
    setup = Workers(netns_pair, tmp_path, cert, tmp_path / "users.toml")
    add_user(setup.users, "alice", "alicepw")
    add_user(setup.users, "bob", "bobpw")
    yield setup


@pytest.fixture
def lan(workers: Workers) -> Iterator[Namespace]:
    """A second client namespace behind the server's, so two clients' tunnels are in different places."""
    ns = Namespace(f"{workers.pair.client.name}-l")
    try:
        attach_lan(workers.pair.server, ns, f"{workers.pair.server_link[2:]}l", "10.201.7.1", "10.201.7.2")
        yield ns
    finally:
        delete_namespace(ns)


def up_address(log: Path) -> str:
    wait_for_text(log, "UP ", DEADLINE)
    line = next(line for line in log.read_text().splitlines() if line.startswith("UP "))
    return line.split()[1]


def ping(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def call_on_worker(workers: Workers, index: int, start: Callable[[], Path]) -> str:
    """Start a client while only worker ``index`` accepts (the other one is stopped); its address."""
    return up_address(call_on_worker_log(workers, index, start, "UP "))


def call_on_worker_log(workers: Workers, index: int, start: Callable[[], Path], until: str = "DOWN ") -> Path:
    """Start a client while only worker ``index`` accepts (the other one is stopped), until its log
    shows ``until``; its log."""
    other = workers.worker_pid(1 - index)
    run("kill", "-STOP", str(other))
    try:
        log = start()
        wait_for_text(log, until, DEADLINE)
        return log
    finally:
        run("kill", "-CONT", str(other))


def test_sessions_on_two_workers_talk_show_in_status_and_are_kicked(workers: Workers, lan: Namespace) -> None:
    before = network_state(workers.pair.server)
    workers.start_server("--metrics", METRICS)
    pair = workers.pair
    alice = call_on_worker(
        workers, 0, lambda: workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    )
    bob = call_on_worker(
        workers, 1, lambda: workers.start_client(lan, workers.pair.server_ip, "wb", "bob", "bobpw")
    )
    rows = {row["user"]: row for row in workers.wait_for_sessions(2)}
    assert (rows["alice"]["worker"], rows["bob"]["worker"]) == (0, 1)
    assert (rows["alice"]["address"], rows["bob"]["address"]) == (alice, bob)
    # One scrape of the supervisor's metrics address has every worker's series.
    body = pair.server.run(sys.executable, "-c", _GET, f"http://{METRICS}/metrics").stdout
    sessions = {
        sample.labels["worker"]: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "pysstp_sessions" and sample.labels["auth_method"] == "mschapv2"
    }
    assert sessions == {"0": 1.0, "1": 1.0}
    # From one worker's client to the other's: through the kernel, between the two workers' TUNs.
    pair.client.run("ip", "route", "add", "10.77.0.0/24", "dev", "wa")
    lan.run("ip", "route", "add", "10.77.0.0/24", "dev", "wb")
    ping(pair.client, bob)
    ping(lan, alice)
    ping(pair.client, SERVER_TUNNEL_IP)
    kicked = pair.server.run(PYSSTP, "status", "--kick", "bob", "--socket", str(workers.tmp / "ctl.sock"))
    assert "disconnected 1 session(s)" in kicked.stdout
    wait_for_text(workers.tmp / "client-wb.log", "DOWN ", DEADLINE)
    assert [row["user"] for row in workers.wait_for_sessions(1)] == ["alice"]
    assert workers.server is not None
    workers.server.terminate()
    assert workers.server.wait(30) == 0, workers.log.read_text()
    wait_for_text(workers.tmp / "client-wa.log", "DOWN 0", DEADLINE)
    # Everything undone: TUNs, routes (the sessions' and the pool's), nftables, forwarding, state files.
    assert network_state(pair.server) == before
    assert pair.server.run("nft", "list", "tables").stdout == ""
    assert pair.server.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"  # attach_lan's
    assert list((workers.tmp / "state").iterdir()) == []


def wait_for_output(ns: Namespace, command: tuple[str, ...], text: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in (output := ns.run(*command).stdout):
        assert time.monotonic() < deadline, f"no {text!r} in {' '.join(command)}:\n{output}"
        time.sleep(0.1)


def test_ipv6_prefix_sessions_on_two_workers_reach_each_other(workers: Workers, lan: Namespace) -> None:
    prefix = IPv6Network("fd77:77::/64")
    before = network_state(workers.pair.server)
    workers.start_server("--ipv6", str(prefix))
    pair = workers.pair

    def client(ns: Namespace, name: str, user: str) -> Callable[[], Path]:
        return lambda: workers.start_client(ns, pair.server_ip, name, user, f"{user}pw", "ipv6")

    logs = {
        "wa": call_on_worker_log(workers, 0, client(pair.client, "wa", "alice"), "UP6 "),
        "wb": call_on_worker_log(workers, 1, client(lan, "wb", "bob"), "UP6 "),
    }
    rows = {row["user"]: row for row in workers.wait_for_sessions(2)}
    assert (rows["alice"]["worker"], rows["bob"]["worker"]) == (0, 1)
    link_local = {
        name: IPv6Address(
            next(line for line in log.read_text().splitlines() if line.startswith("UP6 ")).split()[1]
        )
        for name, log in logs.items()
    }
    address = {
        name: IPv6Address(prefix.network_address.packed[:8] + ll.packed[8:])
        for name, ll in link_local.items()
    }
    for ns, name in ((pair.client, "wa"), (lan, "wb")):
        # The client's kernel forms its address from the advertisement of its own worker.
        wait_for_output(ns, ("ip", "-6", "addr", "show", "dev", name), f"{address[name]}/64")
    routes = pair.server.run("ip", "-6", "route").stdout
    assert f"unreachable {prefix}" in routes, routes
    assert f"{address['wa']} dev {TUN}-0" in routes and f"{address['wb']} dev {TUN}-1" in routes, routes
    # From one worker's client to the other's, to the server, and from the server to each.
    ping(pair.client, str(address["wb"]))
    ping(lan, str(address["wa"]))
    ping(pair.client, str(prefix[1]))
    ping(lan, str(prefix[1]))
    ping(pair.server, str(address["wa"]))
    ping(pair.server, f"{link_local['wb']}%{TUN}-1")
    # A session's end takes its address's route; the server's end takes the prefix's.
    pair.server.run(PYSSTP, "status", "--kick", "bob", "--socket", str(workers.tmp / "ctl.sock"))
    wait_for_text(logs["wb"], "DOWN ", DEADLINE)
    workers.wait_for_sessions(1)
    assert str(address["wb"]) not in pair.server.run("ip", "-6", "route").stdout
    assert workers.server is not None
    workers.server.terminate()
    assert workers.server.wait(30) == 0, workers.log.read_text()
    assert network_state(pair.server) == before


@pytest.mark.skipif(shutil.which("radclient") is None, reason="radclient is not installed (freeradius-utils)")
def test_radclient_disconnects_a_session_on_each_worker(workers: Workers, lan: Namespace) -> None:
    secret = workers.tmp / "dae.secret"
    secret.write_text("dae-s3cret\n")
    workers.start_server(
        "--dae-client", f"127.0.0.1={secret}", "--dae-listen", "127.0.0.1", "--dae-port", "3799"
    )
    pair = workers.pair
    call_on_worker(
        workers, 0, lambda: workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    )
    call_on_worker(workers, 1, lambda: workers.start_client(lan, pair.server_ip, "wb", "bob", "bobpw"))
    rows = {row["user"]: row for row in workers.wait_for_sessions(2)}
    assert (rows["alice"]["worker"], rows["bob"]["worker"]) == (0, 1)
    status = pair.server.run(PYSSTP, "status", "--socket", str(workers.tmp / "ctl.sock"))
    assert "dynamic authorization: listening on 127.0.0.1:3799 for 1 client(s)" in status.stdout

    def radclient(kind: str, attributes: str) -> str:
        request = workers.tmp / "request.txt"
        request.write_text(attributes + "\n")
        answer = pair.server.run(
            "radclient", "-x", "-r", "1", "-t", "10", "-S", str(secret), "-f", str(request),
            "127.0.0.1:3799", kind, check=False,
        )  # fmt: skip
        return answer.stdout + answer.stderr

    for user, log in (("bob", "client-wb.log"), ("alice", "client-wa.log")):
        answer = radclient("disconnect", f"User-Name={user}")
        assert "Received Disconnect-ACK" in answer, answer
        wait_for_text(workers.tmp / log, "DOWN 0", DEADLINE)
    # No worker has a session of carol: the answers of both make the NAK.
    answer = radclient("disconnect", "User-Name=carol")
    assert "Received Disconnect-NAK" in answer and "Session-Context-Not-Found" in answer, answer
    status = pair.server.run(PYSSTP, "status", "--json", "--socket", str(workers.tmp / "ctl.sock"))
    dae = json.loads(status.stdout)["dae"]
    assert (dae["acks"], dae["naks"]) == (2, 1), dae


def test_a_killed_worker_is_restarted_and_the_other_keeps_its_sessions(
    workers: Workers, lan: Namespace
) -> None:
    run(PYSSTP, "user", "add", "carol", "--users", str(workers.users), "--password-file",
        str(workers.users.with_name("alice.pw")), "--address", "10.77.0.50")  # fmt: skip
    workers.start_server()
    pair = workers.pair
    alice = call_on_worker(
        workers, 0, lambda: workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    )
    carol = call_on_worker(
        workers, 1, lambda: workers.start_client(lan, workers.pair.server_ip, "wc", "carol", "alicepw")
    )
    assert carol == "10.77.0.50"
    victim = workers.worker_pid(1)
    run("kill", "-KILL", str(victim))
    wait_for_text(workers.log, "worker 1 is back", DEADLINE)
    # The other worker's session never noticed.
    ping(pair.client, SERVER_TUNNEL_IP)
    ping(pair.server, alice)
    wait_for_text(workers.tmp / "client-wc.log", "DOWN ", DEADLINE)
    assert [row["user"] for row in workers.wait_for_sessions(1)] == ["alice"]
    routes = pair.server.run("ip", "route").stdout
    assert "10.77.0.50" not in routes, routes
    # Its fixed address is free again: carol gets it back, whichever worker takes her call.
    again = workers.start_client(lan, workers.pair.server_ip, "wc2", "carol", "alicepw")
    assert up_address(again) == "10.77.0.50"
    ping(pair.server, "10.77.0.50")


def test_a_storm_of_calls_gets_distinct_addresses_on_both_workers(workers: Workers) -> None:
    add_user(workers.users, "storm", "stormpw")
    workers.start_server("--connections-per-source-per-minute", "0")
    storm = workers.pair.client.start(
        [sys.executable, "-c", _STORM, workers.pair.server_ip, PORT, str(workers.cert), "40"], None
    )
    assert storm.stdout is not None and storm.stdin is not None
    readable, _, _ = select.select([storm.stdout], [], [], 120)
    assert readable, "the storm's calls did not all come up"
    addresses = json.loads(storm.stdout.readline())
    assert len(addresses) == len(set(addresses)) == 40
    rows = workers.wait_for_sessions(40)
    assert sorted(str(row["address"]) for row in rows) == sorted(addresses)
    assert {row["worker"] for row in rows} <= {0, 1}
    storm.stdin.close()
    storm.wait(30)


def test_a_users_older_session_on_another_worker_makes_way(workers: Workers, lan: Namespace) -> None:
    workers.start_server("--max-sessions-per-user", "1", "--on-limit", "replace")
    pair = workers.pair
    call_on_worker(
        workers, 0, lambda: workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    )
    newer = call_on_worker(
        workers, 1, lambda: workers.start_client(lan, pair.server_ip, "wa2", "alice", "alicepw")
    )
    wait_for_text(workers.tmp / "client-wa.log", "DOWN ", DEADLINE)
    (row,) = workers.wait_for_sessions(1)
    assert (row["user"], row["worker"], row["address"]) == ("alice", 1, newer)
    assert "ends for a newer one (on_limit = replace)" in workers.log.read_text()


def test_sighup_and_drain_reach_every_worker(workers: Workers, lan: Namespace) -> None:
    before = network_state(workers.pair.server)
    workers.start_server()
    pair = workers.pair
    call_on_worker(
        workers, 0, lambda: workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    )
    call_on_worker(workers, 1, lambda: workers.start_client(lan, pair.server_ip, "wb", "bob", "bobpw"))
    assert workers.server is not None
    workers.server.send_signal(signal.SIGHUP)
    wait_for_text(workers.log, "pysstp.server[0]: reloaded users", DEADLINE)
    wait_for_text(workers.log, "pysstp.server[1]: reloaded users", DEADLINE)
    assert "restart to apply" not in workers.log.read_text()  # each worker keeps its own TUN name
    drained = pair.server.run(PYSSTP, "drain", "--socket", str(workers.tmp / "ctl.sock"))
    assert "draining: 2 session(s) left" in drained.stdout
    # No new call is taken; the server ends once the two calls have.
    refused = pair.client.run(sys.executable, TUNNEL_CLIENT, pair.server_ip, PORT, str(workers.cert), "alice",
                              "alicepw", "auto", "wx", check=False)  # fmt: skip
    assert "refused the connection" in refused.stderr, refused.stderr
    for client in (*pair.client.processes, *lan.processes):
        client.terminate()
    assert workers.server.wait(30) == 0, workers.log.read_text()
    assert "drained: every worker has ended" in workers.log.read_text()
    assert network_state(pair.server) == before


def test_a_source_refused_on_one_worker_is_refused_by_the_other(workers: Workers) -> None:
    workers.start_server("--max-login-failures-per-source", "2", "--login-delay", "0")
    pair = workers.pair

    def client(name: str, password: str) -> Callable[[], Path]:
        return lambda: workers.start_client(pair.client, pair.server_ip, name, "alice", password)

    for name in ("f1", "f2"):
        call_on_worker_log(workers, 0, client(name, "wrong"))
    # A status round trip through every worker: worker 1 has taken in worker 0's failures before it.
    workers.status()
    refused = call_on_worker_log(workers, 1, client("f3", "alicepw"))
    assert "DOWN 1 HTTP handshake failed: HTTP status 503 Service Unavailable" in refused.read_text()
    assert re.search(
        r"pysstp\.server\[1\]: 10\.200\.7\.2:\d+: refused for \d+ s more after 2 failed",
        workers.log.read_text(),
    )


def test_a_worker_that_cannot_start_stops_the_server_with_one_line(workers: Workers) -> None:
    pair = workers.pair
    pair.server.run("ip", "link", "add", f"{TUN}-1", "type", "veth", "peer", "name", "wkpeer")  # taken
    before = network_state(pair.server)
    key = workers.cert.with_name("key.pem")
    log = workers.tmp / "failed.log"
    server = pair.server.start(
        [PYSSTP, "server", "--cert", str(workers.cert), "--key", str(key), "--users", str(workers.users),
         "--listen", pair.server_ip, "--port", PORT, "--tun-name", TUN, "--workers", "2",
         "--control-socket", str(workers.tmp / "ctl.sock"), "--state-dir", str(workers.tmp / "state")],
        log,
    )  # fmt: skip
    assert server.wait(60) == 1, log.read_text()
    errors = [line for line in log.read_text().splitlines() if line.startswith("pysstp: ")]
    assert len(errors) == 1 and f"{TUN}-1" in errors[0], log.read_text()
    assert "Traceback" not in log.read_text()
    assert network_state(pair.server) == before
    assert pair.server.run("nft", "list", "tables").stdout == ""
    assert list((workers.tmp / "state").iterdir()) == []


def has_ended(pid: int) -> bool:
    """Whether process ``pid`` has exited (an orphan nobody has reaped yet counts: it is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


@pytest.mark.parametrize("then", ["start", "cleanup"])
def test_a_killed_supervisors_workers_end_and_the_next_start_undoes_the_rest(
    workers: Workers, then: str
) -> None:
    """A worker does not outlive its supervisor: SIGKILLed, the supervisor leaves its host-wide changes
    (the pool's unreachable route, the nftables table, its state file), and its workers end by
    themselves, telling their calls goodbye and taking their TUNs and routes along; the next start (or
    ``pysstp server --cleanup``) undoes the rest."""
    pair = workers.pair
    before = network_state(pair.server)
    workers.start_server()
    client = workers.start_client(pair.client, pair.server_ip, "wa", "alice", "alicepw")
    address = up_address(client)
    pids = [workers.worker_pid(index) for index in (0, 1)]
    assert workers.server is not None
    workers.server.kill()
    workers.server.wait(30)
    deadline = time.monotonic() + DEADLINE
    while not all(has_ended(pid) for pid in pids):
        assert time.monotonic() < deadline, workers.log.read_text()
        time.sleep(0.1)
    log = workers.log.read_text()
    assert log.count("the supervisor has gone away: shutting down") == 2, log
    wait_for_text(client, "DOWN 0", DEADLINE)  # told, not timed out
    links = pair.server.run("ip", "-o", "link").stdout
    assert f"{TUN}-0" not in links and f"{TUN}-1" not in links, links
    routes = pair.server.run("ip", "route").stdout
    assert address not in routes and "unreachable 10.77.0.0/24" in routes, routes
    # The workers' journals are gone with their clean undo; the supervisor's host-wide changes are left.
    (left,) = (workers.tmp / "state").iterdir()
    assert left.name.startswith(f"{TUN}@"), left
    assert f"table inet pysstp-{TUN}-" in pair.server.run("nft", "list", "tables").stdout
    if then == "cleanup":
        cleaned = pair.server.run(
            PYSSTP, "server", "--tun-name", TUN, "--state-dir", str(workers.tmp / "state"), "--cleanup"
        )
        assert "undone: " in cleaned.stdout and "nftables table" in cleaned.stdout, cleaned.stdout
    else:
        # The next start undoes what the killed supervisor left, then serves.
        workers.log.rename(workers.tmp / "killed.log")
        workers.start_server()
        assert f"undid what a server on {TUN} left behind" in workers.log.read_text(), workers.log.read_text()
        again = workers.start_client(pair.client, pair.server_ip, "wb", "alice", "alicepw")
        up_address(again)
        ping(pair.client, SERVER_TUNNEL_IP)
        workers.server.terminate()
        assert workers.server.wait(30) == 0, workers.log.read_text()
    assert network_state(pair.server) == before
    assert pair.server.run("nft", "list", "tables").stdout == ""
    assert list((workers.tmp / "state").iterdir()) == []


def test_the_watchdog_is_fed_only_while_every_worker_answers(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd (a datagram socket here) hears WATCHDOG=1 from the supervisor while both workers answer;
    a worker whose loop does not run (SIGSTOP) stops them, named in the log, until it runs again."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(workers.tmp / "notify"))
        manager.settimeout(DEADLINE)
        monkeypatch.setenv("NOTIFY_SOCKET", str(workers.tmp / "notify"))
        monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a check every 0.5 s, each worker given 0.25 s

        def watchdog() -> None:
            while manager.recv(4096) != b"WATCHDOG=1":
                pass

        workers.start_server()
        watchdog()
        stopped = workers.worker_pid(1)
        run("kill", "-STOP", str(stopped))
        try:
            deadline = time.monotonic() + DEADLINE
            while not re.search(
                r"worker\(s\) (0, )?1 did not answer within 0\.25 s: no WATCHDOG=1", workers.log.read_text()
            ):
                assert time.monotonic() < deadline, workers.log.read_text()
                time.sleep(0.1)
        finally:
            run("kill", "-CONT", str(stopped))
        # Fed again once it answers (more than the one message that may have been on its way).
        for _ in range(3):
            watchdog()
