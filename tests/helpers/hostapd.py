"""hostapd from Debian as a RADIUS server (``driver=none``: its integrated EAP server, no radio), run by the
tests with a configuration of their own in a namespace of its own.

It is a second, independent PEAP server: unlike FreeRADIUS 3.2, hostapd's PEAPv0 sends MS-PEAP's
Crypto-Binding TLV and checks the peer's, and its MS-MPPE keys come from the Compound Session Key, so a
PEAP login through it checks pysstp's crypto binding and PEAP MSK against another implementation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import certlab
from helpers.freeradius import SECRET, RadiusHost
from helpers.namespaces import netns_unavailable
from helpers.radius_daemon import RadiusDaemon

HOSTAPD = "hostapd"
READY = "AP-ENABLED"
"""What ``hostapd -dd`` logs once its (radio-less) interface is up and the RADIUS server listens."""
PORT = 1812


def skip_unless_hostapd() -> None:
    """Skip (saying why) without root namespaces or without hostapd; CI has both."""
    why = netns_unavailable()
    if why is None and shutil.which(HOSTAPD) is None:
        why = "needs hostapd ('make system-deps' installs it)"
    if why is not None:
        pytest.skip(why)


@dataclass
class Hostapd(RadiusDaemon):
    """One running ``hostapd -dd`` (stopped by PID with :meth:`stop`)."""

    @property
    def log(self) -> Path:
        """Its debug output (the whole EAP trace)."""
        return self.confdir / "hostapd.log"

    def start(self) -> None:
        """Start it and wait until it listens."""
        self.launch([HOSTAPD, "-dd", str(self.confdir / "hostapd.conf")], self.log, READY)


def write_config(confdir: Path, host: RadiusHost, users: Sequence[tuple[str, str]]) -> None:
    """hostapd.conf, the EAP users (PEAP outside, EAP-MSCHAPv2 with the password inside), the RADIUS
    clients (the test process, with :data:`SECRET`) and the lab's server certificate."""
    confdir.mkdir(parents=True, exist_ok=True)
    lab = certlab.lab()
    (confdir / "ca.pem").write_bytes(lab.ca.certificate_pem())
    (confdir / "server.pem").write_bytes(lab.server.certificate_pem())
    key = confdir / "server.key"
    key.write_bytes(lab.server.key_pem())
    key.chmod(0o600)
    lines = [f'"{name}"\tPEAP\n"{name}"\tMSCHAPV2\t"{password}"\t[2]\n' for name, password in users]
    (confdir / "eap_user").write_text("".join(lines))
    (confdir / "clients").write_text(f"{host.local_address}/32\t{SECRET.decode()}\n")
    (confdir / "hostapd.conf").write_text(
        "\n".join(
            [
                "driver=none",
                # A name only: driver=none opens no interface.
                f"interface=hap{os.getpid() % 100000}",
                "logger_stdout=-1",
                "logger_stdout_level=0",
                "eap_server=1",
                f"eap_user_file={confdir / 'eap_user'}",
                f"ca_cert={confdir / 'ca.pem'}",
                f"server_cert={confdir / 'server.pem'}",
                f"private_key={key}",
                f"radius_server_clients={confdir / 'clients'}",
                f"radius_server_auth_port={PORT}",
                "",
            ]
        )
    )


def start_hostapd(host: RadiusHost, confdir: Path, users: Sequence[tuple[str, str]]) -> Hostapd:
    """Configure and start hostapd's RADIUS server in ``host``'s namespace; the caller stops it."""
    write_config(confdir, host, users)
    server = Hostapd(host.namespace, confdir, host.address, PORT)
    server.start()
    return server
