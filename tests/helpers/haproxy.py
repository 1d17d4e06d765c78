"""HAProxy from Debian, run by the tests with a configuration of their own in a namespace of their own.

:func:`write_config` generates a self-contained configuration (one TCP frontend, one backend), so nothing
of the system's /etc/haproxy is used and the system's own instance (haproxy.service) is never touched.
:class:`HAProxy` starts ``haproxy -db -f CFG`` (in the foreground, logging to its stdout) inside a
:class:`~helpers.namespaces.Namespace`, waits until it listens, answers questions on its stats socket
(the runtime API) and stops it by PID.
"""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.namespaces import Namespace, netns_unavailable, stop_process

HAPROXY = "haproxy"
START_TIMEOUT = 20.0
"""Seconds for HAProxy to listen."""
BACKEND = "nodes"
"""The name of the one backend."""


def haproxy_unavailable() -> str | None:
    """Why HAProxy cannot be run in a namespace here, or ``None`` when it can."""
    why = netns_unavailable()
    if why is None and shutil.which(HAPROXY) is None:
        why = "needs HAProxy ('haproxy'); 'make system-deps' installs it"
    return why


def skip_unless_haproxy() -> None:
    """Skip (saying why) without root namespaces or without HAProxy; CI has both."""
    why = haproxy_unavailable()
    if why is not None:
        pytest.skip(why)


@dataclass(frozen=True)
class Backend:
    """One ``server`` line of the backend: a name, where it listens, and what follows on the line (for
    example ``send-proxy-v2 check inter 250ms``)."""

    name: str
    address: str
    port: int
    options: str = ""

    def line(self) -> str:
        """The configuration line."""
        return f"    server {self.name} {self.address}:{self.port} {self.options}".rstrip()


def write_config(
    path: Path,
    *,
    bind: str,
    servers: Sequence[Backend],
    stats_socket: Path,
    pidfile: Path,
    backend_options: Sequence[str] = (),
) -> str:
    """Write a complete configuration to ``path`` and return it: TCP mode, a frontend with ``bind``
    (``ADDR:PORT`` and its options, e.g. ``ssl crt FILE``), ``servers`` in one round-robin backend
    with ``backend_options`` (e.g. ``option redispatch``), the log on stdout, the runtime API on
    ``stats_socket``."""
    lines = [
        "global",
        "    log stdout format raw local0 info",
        f"    pidfile {pidfile}",
        f"    stats socket {stats_socket} mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    timeout connect 5s",
        # An SSTP call is one long TCP connection whose only traffic may be the hello every 60 s.
        "    timeout client 1h",
        "    timeout server 1h",
        "    timeout check 5s",
        "",
        "frontend sstp",
        f"    bind {bind}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        *(f"    {option}" for option in backend_options),
        *(server.line() for server in servers),
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text


@dataclass
class HAProxy:
    """One running ``haproxy -db`` in ``namespace`` with its configuration, log and stats socket in
    ``directory``; stopped by PID with :meth:`stop`."""

    namespace: Namespace
    directory: Path
    bind: str
    servers: Sequence[Backend]
    backend_options: Sequence[str] = ()
    process: subprocess.Popen[str] | None = None
    config: str = field(default="", init=False)

    @property
    def config_path(self) -> Path:
        """Its configuration file."""
        return self.directory / "haproxy.cfg"

    @property
    def log(self) -> Path:
        """Its stdout and stderr: the log lines and its own warnings."""
        return self.directory / "haproxy.log"

    @property
    def stats_socket(self) -> Path:
        """The runtime API's Unix socket (reachable from any namespace: it is a file)."""
        return self.directory / "haproxy.sock"

    def start(self) -> None:
        """Write the configuration, check it (``-c``), start HAProxy and wait until it listens."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = write_config(
            self.config_path,
            bind=self.bind,
            servers=self.servers,
            stats_socket=self.stats_socket,
            pidfile=self.directory / "haproxy.pid",
            backend_options=self.backend_options,
        )
        checked = self.namespace.run(HAPROXY, "-c", "-f", str(self.config_path), check=False)
        assert checked.returncode == 0, f"haproxy -c:\n{checked.stdout}{checked.stderr}\n{self.config}"
        # -db: in the foreground, not forked, so the PID is HAProxy's own and stopping it by PID works.
        self.process = self.namespace.start([HAPROXY, "-db", "-f", str(self.config_path)], self.log)
        self._wait_listening()

    def _wait_listening(self) -> None:
        address = self.bind.split()[0]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"haproxy exited ({self.process.returncode}):\n{self.describe()}")
            listening = self.namespace.run("ss", "-Hltn", "src", address).stdout
            if listening.strip() and self.stats_socket.exists():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy does not listen on {address}:\n{self.describe()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it by PID (SIGTERM: HAProxy's hard stop, which closes every connection)."""
        if self.process is not None:
            stop_process(self.process)

    def ask(self, command: str) -> str:
        """One command on the runtime API (e.g. ``show stat``); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
            api.settimeout(10)
            api.connect(str(self.stats_socket))
            api.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := api.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, dict[str, str]]:
        """Each backend server's row of ``show stat`` (``status``, ``check_status``, ``scur``, ...),
        by server name."""
        text = self.ask("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == BACKEND and row["svname"] != "BACKEND"}

    def describe(self) -> str:
        """Its configuration and log, for failure messages."""
        log = self.log.read_text(errors="replace")[-20000:] if self.log.exists() else "(no log)"
        return f"haproxy.cfg:\n{self.config}\nhaproxy log:\n{log}"
