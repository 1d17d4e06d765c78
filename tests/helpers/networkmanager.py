"""A real NetworkManager for one test: in the client's network namespace, with a private system bus and a
private mount namespace, so the host's NetworkManager, bus, /etc and /run are never touched.

What makes NetworkManager 1.42 work there (see issue 15 and docs/networkmanager.md):
- its own ``dbus-daemon`` on a socket in the test's directory, named by ``DBUS_SYSTEM_BUS_ADDRESS``;
- in a private mount namespace: a tmpfs on /run, and the test's directories bind-mounted over
  /var/lib/NetworkManager, /etc/NetworkManager/system-connections and the two VPN plugin directories (so
  the plugin's ``.name`` file is the test's, and nothing lands in the host's /etc);
- /sys read-only, because with a writable /sys NetworkManager waits for udev (not running here) and
  leaves every device unmanaged; ``no-auto-default=*``; resolv.conf only under its own /run.
Everything is stopped by PID; the plugin service it started is stopped too if NetworkManager left it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helpers.connect_process import PYSSTP
from helpers.namespaces import Namespace, stop_process, wait_for_text

SERVICE_PROGRAM = str(Path(sys.executable).with_name("pysstp-nm-service"))
VPN_DIRS = ("/usr/lib/NetworkManager/VPN", "/etc/NetworkManager/VPN")
START_TIMEOUT = 30.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

_NM_CONFIG = """[main]
plugins=keyfile
no-auto-default=*
rc-manager=unmanaged
auth-polkit=false

[logging]
level=INFO
domains=VPN:DEBUG,AGENTS:DEBUG
"""


def networkmanager_unavailable() -> str | None:
    """Why NetworkManager cannot run here, or ``None``."""
    for program in ("/usr/sbin/NetworkManager", "/usr/bin/nmcli", "/usr/bin/dbus-daemon", "/usr/bin/unshare"):
        if not Path(program).exists():
            return f"needs {program}; 'make system-deps' installs network-manager and dbus"
    if not Path(SERVICE_PROGRAM).exists():
        return f"needs {SERVICE_PROGRAM}: make .venv/.installed"
    return None


@dataclass
class NetworkManager:
    """NetworkManager running in ``ns`` (see the module docstring); :meth:`stop` ends it all."""

    ns: Namespace
    tmp: Path
    bus: subprocess.Popen[str] | None = None
    daemon: subprocess.Popen[str] | None = None
    children: set[int] = field(default_factory=set)

    @property
    def log(self) -> Path:
        """NetworkManager's log, with the plugin's lines (its stderr is NetworkManager's)."""
        return self.tmp / "NetworkManager.log"

    @property
    def vpn_dir(self) -> Path:
        """What NetworkManager sees as /usr/lib/NetworkManager/VPN."""
        return self.tmp / "vpn"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.tmp / 'bus.sock'}"}

    def start(self) -> None:
        """Start the bus, install the plugin's .name file, start NetworkManager and wait for it."""
        for name in ("vpn", "vpn-etc", "var-lib", "system-connections"):
            (self.tmp / name).mkdir(mode=0o755)
        (self.tmp / "bus.conf").write_text(_BUS_CONFIG.format(socket=self.tmp / "bus.sock"))
        (self.tmp / "NetworkManager.conf").write_text(_NM_CONFIG)
        bus_log = self.tmp / "dbus.log"
        with bus_log.open("w") as out:
            self.bus = subprocess.Popen(
                ["dbus-daemon", f"--config-file={self.tmp / 'bus.conf'}", "--nofork", "--nopidfile",
                 "--print-address"],
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        wait_for_text(bus_log, "unix:", START_TIMEOUT, self.bus)
        subprocess.run(
            [PYSSTP, "nm", "install", "--name-dir", str(self.vpn_dir), "--no-policy",
             "--program", SERVICE_PROGRAM],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        mounts = [
            "mount -t tmpfs tmpfs /run",
            f"mount --bind {self.tmp / 'var-lib'} /var/lib/NetworkManager",
            f"mount --bind {self.tmp / 'system-connections'} /etc/NetworkManager/system-connections",
            f"mount --bind {self.vpn_dir} {VPN_DIRS[0]}",
            f"if [ -d {VPN_DIRS[1]} ]; then mount --bind {self.tmp / 'vpn-etc'} {VPN_DIRS[1]}; fi",
            "mount -o remount,ro /sys",
        ]
        script = (
            " && ".join(mounts)
            + f" && exec NetworkManager --debug --config {self.tmp / 'NetworkManager.conf'}"
        )
        with self.log.open("w") as out:
            self.daemon = subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, "unshare", "--mount", "--propagation", "private",
                 "sh", "-c", script],
                stdout=out, stderr=subprocess.STDOUT, text=True, env=self.env,
            )  # fmt: skip
        self.wait(lambda: self.nmcli("general", check=False).returncode == 0, "NetworkManager answers")

    def nmcli(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """``nmcli`` in NetworkManager's namespaces (it reads the same .name files)."""
        assert self.daemon is not None
        result = subprocess.run(
            ["nsenter", "--target", str(self.daemon.pid), "--mount", "--net", "nmcli", *args],
            capture_output=True, text=True, env=self.env, timeout=timeout,
        )  # fmt: skip
        self._note_children()
        if check and result.returncode != 0:
            raise AssertionError(
                f"nmcli {' '.join(args)}: {result.stdout}{result.stderr}\n{self.log.read_text()}"
            )
        return result

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command in NetworkManager's namespaces (``pysstp nm import`` talks to its bus)."""
        assert self.daemon is not None
        return subprocess.run(
            ["nsenter", "--target", str(self.daemon.pid), "--mount", "--net", *args],
            capture_output=True, text=True, env=self.env, check=check, timeout=60,
        )  # fmt: skip

    def field(self, name: str, what: str) -> list[str]:
        """The values of ``what`` (e.g. ``IP4.ADDRESS``) of connection ``name``, one per line."""
        output = self.nmcli("--get-values", what, "connection", "show", name, check=False).stdout
        return [line for part in output.splitlines() for line in part.split(" | ") if line]

    def add_uplink(self, link: str, address: str, gateway: str) -> None:
        """The primary connection a VPN needs: ``link`` with a static address and a gateway."""
        self.nmcli(
            "connection", "add", "type", "ethernet", "ifname", link, "con-name", "uplink",
            "ipv4.method", "manual", "ipv4.addresses", address, "ipv4.gateway", gateway,
            "ipv6.method", "disabled",
        )  # fmt: skip
        self.wait(
            lambda: self.nmcli("--wait", "10", "connection", "up", "uplink", check=False).returncode == 0,
            "the uplink activates",
        )

    def wait(self, predicate: object, what: str, timeout: float = 60.0) -> None:
        """Wait for ``predicate()``; fail with NetworkManager's log when it does not come."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(f"NetworkManager exited before: {what}\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}\n{self.log.read_text()}")
            time.sleep(0.2)

    def _note_children(self) -> None:
        """Remember the plugin services NetworkManager started (its descendants: ``ip netns exec`` may
        sit between), to stop them by PID."""
        if self.daemon is not None:
            self.children.update(pid for pid in _descendants(self.daemon.pid) if _runs(pid, SERVICE_PROGRAM))

    def service_pids(self) -> list[int]:
        """The plugin services NetworkManager started that still run."""
        self._note_children()
        return [pid for pid in sorted(self.children) if _runs(pid, SERVICE_PROGRAM)]

    def stop(self) -> None:
        """Stop NetworkManager, what it started, and the bus, by PID."""
        self._note_children()
        if self.daemon is not None:
            stop_process(self.daemon, 20)
        for pid in self.children:
            if _runs(pid, SERVICE_PROGRAM):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_runs(pid, SERVICE_PROGRAM) for pid in self.children) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.children:
            if _runs(pid, SERVICE_PROGRAM):
                os.kill(pid, signal.SIGKILL)
        if self.bus is not None:
            stop_process(self.bus)


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            continue
        for child in children - found:
            found |= {child, *_descendants(child)}
    return found


def _runs(pid: int, program: str) -> bool:
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def vpn_add(
    nm: NetworkManager, name: str, data: Sequence[str], secrets: Sequence[str] = (), *extra: str
) -> None:
    """``nmcli connection add type vpn vpn-type pysstp`` with ``vpn.data`` and ``vpn.secrets`` items."""
    args = ["connection", "add", "type", "vpn", "vpn-type", "pysstp", "con-name", name,
            "vpn.data", ", ".join(data), "ipv6.method", "ignore", *extra]  # fmt: skip
    if secrets:
        args += ["vpn.secrets", ", ".join(secrets)]
    nm.nmcli(*args)
