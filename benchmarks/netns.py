"""What the benchmarks share: a throwaway network namespace, a self-signed certificate, a user database,
the real ``pysstp server`` process inside the namespace, and reading its memory and CPU from /proc.

Everything created here is named after this process and removed by :meth:`BenchNamespace.close`, also
when a run fails; processes are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYSSTP = [sys.executable, "-m", "pysstp"]
ROOT = Path(__file__).resolve().parents[1]
"""The repository: processes start there, so ``python -m benchmarks...`` finds this package."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def command_line(description: str, quick: str) -> argparse.ArgumentParser:
    """The options of every benchmark's ``python -m`` entry: ``--quick`` (help text ``quick``), ``--json``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    return parser


def report(results: dict[str, Any], render: Callable[[dict[str, Any]], str], json_path: Path | None) -> int:
    """Print ``render(results)``, and write the results as JSON to ``json_path`` if given."""
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


def cannot_run() -> str | None:
    """Why the namespace benchmarks cannot run here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root: creates a network namespace and a TUN device"
    if shutil.which("ip") is None:
        return "needs iproute2 ('ip')"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("openssl") is None:
        return "needs the openssl command (for a throwaway certificate)"
    return None


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command and wait for it, capturing its output."""
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class BenchNamespace:
    """One network namespace with loopback up, and the processes started in it."""

    name: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @classmethod
    def create(cls, tag: str) -> BenchNamespace:
        """A fresh namespace named ``pysstp-b<tag>-<pid>``."""
        ns = cls(f"pysstp-b{tag}-{os.getpid()}")
        run("ip", "netns", "add", ns.name)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def start(
        self, args: list[str], log: Path | None = None, *, pipes: bool = False
    ) -> subprocess.Popen[str]:
        """Start a process inside the namespace (``ip netns exec`` execs it, so the PID is the program's).

        Its output goes to ``log``, or with ``pipes`` to pipes the caller reads (stdin too)."""
        handle = log.open("w") if log is not None else None
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=subprocess.PIPE if pipes else handle,
            stderr=subprocess.STDOUT if handle is not None else None,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        if handle is not None:
            handle.close()
        self.processes.append(process)
        return process

    def close(self) -> None:
        """SIGTERM every process started here (SIGKILL after 15 s), then delete the namespace."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        run("ip", "netns", "del", self.name, check=False)


def join(a: BenchNamespace, b: BenchNamespace, a_ip: str, b_ip: str) -> None:
    """Connect two namespaces with a veth pair addressed ``a_ip``/24 and ``b_ip``/24."""
    end_a, end_b = f"v{a.name[-11:]}", f"v{b.name[-11:]}"
    run("ip", "link", "add", end_a, "netns", a.name, "type", "veth", "peer", "name", end_b, "netns", b.name)
    for ns, end, address in ((a, end_a, a_ip), (b, end_b, b_ip)):
        ns.run("ip", "addr", "add", f"{address}/24", "dev", end)
        ns.run("ip", "link", "set", end, "up")


def wait_for_text(log: Path, text: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until ``text`` appears in ``log``; fail with the log if ``process`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no {text!r} from {process.args}:\n{log.read_text()}")
        time.sleep(0.05)


def make_certificate(directory: Path, rsa: bool = False) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``sstp.test`` and 127.0.0.1: ECDSA P-256 by default,
    which makes the server's TLS handshake several times cheaper than RSA-2048."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    key_args = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    run(
        "openssl", "req", "-x509", *key_args, "-nodes", "-days", "2", "-subj", "/CN=sstp.test",
        "-addext", "subjectAltName=DNS:sstp.test,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def add_user(users: Path, name: str, password: str) -> None:
    """Add ``name`` to the user database ``users`` with ``pysstp user add``."""
    secret = users.with_name(f"{name}.pw")
    secret.write_text(password + "\n")
    run(*PYSSTP, "user", "add", name, "--users", str(users), "--password-file", str(secret))


def start_server(ns: BenchNamespace, work: Path, *args: str, timeout: float = 30) -> subprocess.Popen[str]:
    """Start ``pysstp server`` in ``ns`` with ``args`` and wait until it listens."""
    log = work / "server.log"
    process = ns.start([*PYSSTP, "server", *args], log)
    wait_for_text(log, "listening on", process, timeout)
    return process


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3 of stat(5), utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
