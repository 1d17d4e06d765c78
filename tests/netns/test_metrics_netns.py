"""The real `pysstp server` with `--metrics`, scraped over HTTP while a client is connected (needs root)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair, wait_for_text
from helpers.server_process import add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"
METRICS = "127.0.0.1:9150"
SERVER_TUNNEL_IP = "10.77.0.1"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DEADLINE = 20.0
"""Seconds for a count to reach its expected value (the server counts as calls end)."""

_GET = """\
import sys, urllib.error, urllib.request
try:
    answer = urllib.request.urlopen(sys.argv[1], timeout=10)
except urllib.error.HTTPError as error:
    answer = error
print(answer.status)
sys.stdout.write(answer.read().decode())
"""


def get(pair: Pair, path: str) -> tuple[int, str]:
    """``GET path`` on the metrics address, from inside the server's namespace: status and body."""
    result = pair.server.run(sys.executable, "-c", _GET, f"http://{METRICS}{path}")
    status, _, body = result.stdout.partition("\n")
    return int(status), body


def scrape(pair: Pair) -> Samples:
    status, body = get(pair, "/metrics")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def scrape_until(pair: Pair, done: str, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``check(samples)`` holds (the counts follow events in the server), failing with the
    last scrape after :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        samples = scrape(pair)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"never {done}: {samples}")
        time.sleep(0.2)


def start_client(pair: Pair, tmp: Path, cert: Path, name: str, user: str, password: str) -> Path:
    log = tmp / f"client-{name}.log"
    start_tunnel_client(pair.client, log, pair.server_ip, PORT, cert, user, password, "mschapv2", name)
    return log


def test_a_scrape_during_a_call_shows_the_session_its_bytes_and_a_refused_login(
    netns_pair: Pair, tmp_path: Path
) -> None:
    pair = netns_pair
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    add_user(users, "alice", "alicepw")
    server_log = tmp_path / "server.log"
    start_server(
        pair.server, server_log,
        "--cert", str(cert), "--key", str(key), "--users", str(users), "--listen", pair.server_ip,
        "--port", PORT, "--tun-name", "sstp-m0", "--control-socket", str(tmp_path / "ctl.sock"),
        "--auth", "mschapv2", "--metrics", METRICS,
    )  # fmt: skip
    assert f"metrics on http://{METRICS}/metrics" in server_log.read_text()
    assert get(pair, "/health") == (200, "accepting\n")
    assert get(pair, "/nothing")[0] == 404
    before = scrape(pair)
    assert before[sample("pysstp_sessions", auth_method="mschapv2", worker="0")] == 0
    assert before[sample("pysstp_call_failures_total", reason="authentication", worker="0")] == 0

    refused = start_client(pair, tmp_path, cert, "sstp-m1", "alice", "wrong")
    wait_for_text(refused, "DOWN ")
    failures = sample("pysstp_call_failures_total", reason="authentication", worker="0")
    scrape_until(pair, "a refused login", lambda s: s[failures] == 1)

    start_client(pair, tmp_path, cert, "sstp-m2", "alice", "alicepw")
    wait_for_text(tmp_path / "client-sstp-m2.log", "UP ")
    pair.client.run("ping", "-c", "2", "-W", "2", "-i", "0.2", SERVER_TUNNEL_IP)
    bytes_in = sample("pysstp_bytes_total", direction="in", worker="0")
    bytes_out = sample("pysstp_bytes_total", direction="out", worker="0")
    samples = scrape_until(pair, "bytes both ways", lambda s: s[bytes_in] > 0 and s[bytes_out] > 0)
    assert samples[sample("pysstp_sessions", auth_method="mschapv2", worker="0")] == 1
    assert samples[sample("pysstp_connects_total", worker="0")] == 1
    assert samples[failures] == 1
    assert samples[sample("pysstp_handshakes_in_progress", worker="0")] == 0
    assert samples[sample("pysstp_packets_total", direction="in", worker="0")] >= 2
    assert samples[sample("pysstp_process_resident_memory_bytes", worker="0")] > 0
    assert samples[sample("pysstp_draining")] == 0
    assert get(pair, "/health") == (200, "accepting\n")
