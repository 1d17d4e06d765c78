"""Run sorz's sstp-server (PyPI ``sstp-server`` 0.7.2, ``sstpd``) as a private peer for interop tests.

sstpd needs Python >= 3.12 and pysstp runs on 3.11, so ``make sorz-peer`` installs it into its own venv,
``.venv-sorz``, with a Python 3.12 found by ``scripts/find-python3.12``.
sstpd has no PPP of its own: per call it runs a pppd program, which here is
tests/helpers/pppd_standin.py (pysstp's server-side PPP, playing pppd and its plugin), started through a
small wrapper that this module writes so that it runs on this interpreter with tests/ on its path.

Each server runs in a network namespace of its own that has only ``lo``, listening on 127.0.0.1, with
its state (certificate, logs, the wrapper, the plugin sockets sstpd makes under ``TMPDIR``) in a temporary
directory. It is stopped by PID; its pppd stand-ins are its children and sstpd stops them at the end of
each call, so stopping sstpd's process group by PGID afterwards catches only what sstpd itself started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace, stop_process

ROOT = Path(__file__).resolve().parents[2]
SORZ_VENV = ROOT / ".venv-sorz"
SSTPD_PYTHON = SORZ_VENV / "bin" / "python"
SSTPD = SORZ_VENV / "bin" / "sstpd"
SSTP_SERVER_VERSION = "0.7.2"
STANDIN = Path(__file__).resolve().with_name("pppd_standin.py")

SERVER_NAME = "sstp.test"
USER = "alice"
PASSWORD = "alicepw"
LOCAL = "192.168.20.1"
"""sstpd's own PPP address (``--local``): IPCP's peer address, and what the stand-in answers pings for."""
REMOTE_NETWORK = "192.168.20.0/24"
FIRST_REMOTE = "192.168.20.2"
"""The first address sstpd's pool hands out (``--remote``; ``--local`` is taken out of it)."""

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# sstpd offers SHA-1 and SHA-256 whenever it has a certificate, and a client that can do both takes
# SHA-256. To see it verify a SHA-1 binding, this launcher runs sstpd as if its certificate had no
# SHA-256 fingerprint: it then offers only SHA-1, and checks the certificate hash and CMAC with SHA-1.
SHA1_ONLY_LAUNCHER = """\
import sys
from sstpd import certtool
fingerprint = certtool.get_fingerprint
certtool.get_fingerprint = lambda path: certtool.Fingerprint(fingerprint(path).sha1, b"")
from sstpd.__main__ import main
sys.argv[0] = "sstpd"
main()
"""

_counter = itertools.count()


class SorzUnavailable(Exception):
    """sstpd cannot run here; the message says why."""


def check_available() -> None:
    """Raise :class:`SorzUnavailable` unless sstpd and a namespace can run here."""
    if os.geteuid() != 0:
        raise SorzUnavailable("needs root: network namespaces and TUN devices")
    if shutil.which("ip") is None or shutil.which("ss") is None:
        raise SorzUnavailable("needs iproute2 ('ip', 'ss'); 'make system-deps' installs it")
    if not SSTPD.exists():
        finder = subprocess.run([ROOT / "scripts" / "find-python3.12"], capture_output=True, text=True)
        if not finder.stdout.strip():
            raise SorzUnavailable(
                f"sstp-server {SSTP_SERVER_VERSION} needs Python 3.12 and none was found "
                "(pyenv or python3.12 on PATH)"
            )
        raise SorzUnavailable(f"{SSTPD} is missing: 'make sorz-peer' installs it")


@dataclass
class SorzServer:
    """One running sstpd with the pppd stand-in: its namespace, state directory and process."""

    namespace: Namespace
    state: Path
    port: int
    sha1_only: bool = False
    wrong_hlak: bytes | None = None
    """Have the stand-in hand sstpd these keys instead of the session's: a binding that must fail."""
    process: subprocess.Popen[bytes] | None = None
    cert: Path = field(default=Path())
    cert_der: bytes = b""

    @property
    def log(self) -> Path:
        """sstpd's log (stderr and stdout)."""
        return self.state / "sstpd.log"

    @property
    def standin_log(self) -> Path:
        """What the pppd stand-ins logged (all calls, each line with its PID)."""
        return self.state / "pppd-standin.log"

    def log_text(self) -> str:
        """sstpd's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def describe(self) -> str:
        """Both logs, for assertion messages."""
        standin = self.standin_log.read_text(errors="replace") if self.standin_log.exists() else "(none)"
        return f"sstpd log {self.log}:\n{self.log_text()}\npppd stand-in log:\n{standin}"

    def prepare(self) -> Path:
        """Certificate, an empty pppd options file and the stand-in's wrapper; returns the wrapper."""
        self.cert, _, self.cert_der = make_certificate(self.state, SERVER_NAME)
        (self.state / "options.sstpd").write_text("# read by pppd, which the stand-in replaces\n")
        wrapper = self.state / "pppd"
        tests = shlex.quote(str(STANDIN.parents[1]))
        wrapper.write_text(
            "#!/bin/sh\n"
            "# sstpd's --pppd: the pysstp stand-in, on the interpreter that runs the tests\n"
            f'PYTHONPATH={tests} exec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper

    def command(self, wrapper: Path) -> list[str]:
        """sstpd's command line, behind ``env``: sstpd passes its environment on to the stand-in."""
        environment = [
            f"TMPDIR={self.state}",
            f"PYSSTP_STANDIN_USER={USER}",
            f"PYSSTP_STANDIN_PASSWORD={PASSWORD}",
            f"PYSSTP_STANDIN_LOG={self.standin_log}",
        ]
        if self.wrong_hlak is not None:
            environment.append(f"PYSSTP_STANDIN_WRONG_HLAK={self.wrong_hlak.hex()}")
        sstpd = [str(SSTPD_PYTHON), "-c", SHA1_ONLY_LAUNCHER] if self.sha1_only else [str(SSTPD)]
        return [
            "env", *environment, *sstpd,
            "--listen", "127.0.0.1", "--listen-port", str(self.port),
            "--pem-cert", str(self.cert), "--pem-key", str(self.cert.with_name("key.pem")),
            "--pppd", str(wrapper), "--pppd-config", str(self.state / "options.sstpd"),
            "--local", LOCAL, "--remote", REMOTE_NETWORK,
            "--log-level", "10",
        ]  # fmt: skip

    def start(self) -> None:
        """Start sstpd in the namespace, in a process group of its own, and wait for its listener."""
        wrapper = self.prepare()
        with self.log.open("wb") as out:
            # ip netns exec and env exec, so the PID is sstpd's own.
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace.name, *self.command(wrapper)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while f"127.0.0.1:{self.port} " not in self.namespace.run("ss", "-ltnH", check=False).stdout:
            if self.process.poll() is not None:
                raise RuntimeError(f"sstpd exited ({self.process.returncode}):\n{self.describe()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sstpd did not listen within {START_TIMEOUT:g} s:\n{self.describe()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM sstpd by PID, SIGKILL after :data:`STOP_TIMEOUT`; then any stand-in it left behind, by
        its process group (sstpd's PID, which nothing else has)."""
        if self.process is None:
            return
        stop_process(self.process, STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_sorz(
    port: int = 8446, *, sha1_only: bool = False, wrong_hlak: bytes | None = None
) -> Iterator[SorzServer]:
    """A private sstpd in a new namespace; everything is removed on the way out, also when starting it
    failed. Raises :class:`SorzUnavailable` (before changing anything) where it cannot run."""
    check_available()
    namespace = Namespace(f"pysstp-sz{os.getpid() % 100000}-{next(_counter)}")
    server = SorzServer(namespace, Path(tempfile.mkdtemp(prefix="pysstp-sorz-")), port, sha1_only, wrong_hlak)
    try:
        namespace.add()
        server.start()
        yield server
    finally:
        try:
            # Clients first: their CALL_DISCONNECT lets sstpd end (and reap) its stand-ins itself.
            namespace.stop_all()
            server.stop()
        finally:
            delete_namespace(namespace)
            shutil.rmtree(server.state, ignore_errors=True)
