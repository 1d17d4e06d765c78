"""FreeRADIUS 3.2 from Debian, run by the tests with a configuration of their own in a namespace of its own.

:func:`write_config` generates a self-contained configuration directory (radiusd.conf, clients, users,
the modules pap, chap, mschap, eap with EAP-MSCHAPv2, EAP-TLS and PEAP, files and detail), so nothing of
the system's /etc/freeradius is used and the system's own instance is never touched. :class:`FreeRadius`
starts ``freeradius -X -d CONFDIR`` (or, for ``make bench``, ``-f``: threaded, without the trace) inside a
:class:`~helpers.namespaces.Namespace` and stops it by PID.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pysstp.aaa.pki import Issued
from pysstp.ppp.auth.mschapv2 import nt_password_hash

from helpers import certlab
from helpers.namespaces import (
    Namespace,
    attach_lan,
    delete_namespace,
    netns_unavailable,
    run,
)
from helpers.radius_daemon import RadiusDaemon

FREERADIUS = "freeradius"
"""Debian's name for radiusd."""
READY = "Ready to process requests"
"""What ``freeradius`` logs once it listens (with ``-X`` and with ``-f``)."""
SECRET = b"pysstp-radius-secret"
"""The shared secret of every client entry."""

_counter = itertools.count()


def freeradius_unavailable() -> str | None:
    """Why FreeRADIUS cannot be run in a namespace here, or ``None`` when it can (for ``make bench``,
    which reports rather than skips)."""
    why = netns_unavailable()
    if why is None and shutil.which(FREERADIUS) is None:
        why = "needs FreeRADIUS 3.2 ('freeradius'); 'make system-deps' installs it"
    return why


def skip_unless_freeradius() -> None:
    """Skip (saying why) without root namespaces or without FreeRADIUS; CI has both."""
    why = freeradius_unavailable()
    if why is not None:
        pytest.skip(why)


@dataclass(frozen=True)
class RadiusUser:
    """A users-file entry: a name with a Cleartext-Password or (``nt_only``) only an NT-Password (none
    when ``password`` is empty), further ``check`` items (e.g. ``'EAP-Type := TLS'``), and the reply
    attributes of its Access-Accept (FreeRADIUS syntax, e.g. ``'Session-Timeout = 600'``)."""

    name: str
    password: str = ""
    nt_only: bool = False
    reply: tuple[str, ...] = ()
    check: tuple[str, ...] = ()

    def entry(self) -> str:
        """The users-file lines."""
        checks = list(self.check)
        if self.password and self.nt_only:
            checks.insert(0, f"NT-Password := 0x{nt_password_hash(self.password).hex()}")
        elif self.password:
            checks.insert(0, f'Cleartext-Password := "{self.password}"')
        lines = [f'"{self.name}" {", ".join(checks)}'.rstrip()]
        if self.reply:
            lines.append("\t" + ",\n\t".join(self.reply))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RadiusClientEntry:
    """A clients.conf entry: who may send requests, with which secret."""

    name: str
    network: str
    secret: bytes = SECRET


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def write_config(
    confdir: Path,
    *,
    address: str,
    port: int,
    users: Sequence[RadiusUser],
    clients: Sequence[RadiusClientEntry],
    server_certificate: Issued | None = None,
) -> None:
    """Write a complete FreeRADIUS configuration into ``confdir``: authentication on ``address:port``,
    accounting on ``port + 1`` into ``confdir/radacct/detail``, every client requiring
    Message-Authenticator."""
    lab = certlab.lab()
    server = server_certificate or lab.server
    for sub in ("log", "run", "radacct", "certs", "tlscache"):
        (confdir / sub).mkdir(parents=True, exist_ok=True)
    certs = confdir / "certs"
    _pem(certs / "server.pem", server.certificate_pem())
    _pem(certs / "server.key", server.key_pem())
    _pem(certs / "ca.pem", lab.ca.certificate_pem())
    (confdir / "dictionary").write_text("")
    (confdir / "users").write_text("".join(user.entry() for user in users))
    (confdir / "clients.conf").write_text(
        "".join(
            f"client {client.name} {{\n"
            f"\tipaddr = {client.network}\n"
            f"\tsecret = {client.secret.decode()}\n"
            "\trequire_message_authenticator = yes\n"
            "}\n"
            for client in clients
        )
    )
    (confdir / "radiusd.conf").write_text(
        _RADIUSD.replace("@CONFDIR@", str(confdir))
        .replace("@ADDRESS@", address)
        .replace("@PORT@", str(port))
        .replace("@ACCTPORT@", str(port + 1))
    )


_RADIUSD = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = @CONFDIR@/log
raddbdir = @CONFDIR@
radacctdir = @CONFDIR@/radacct
name = freeradius
confdir = @CONFDIR@
modconfdir = @CONFDIR@
certdir = @CONFDIR@/certs
cadir = @CONFDIR@/certs
run_dir = @CONFDIR@/run
db_dir = @CONFDIR@
libdir = /usr/lib/freeradius
pidfile = @CONFDIR@/run/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
proxy_requests = no

log {
	destination = files
	colourise = no
	file = @CONFDIR@/log/radius.log
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}

security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}

thread pool {
	start_servers = 2
	max_servers = 8
	min_spare_servers = 1
	max_spare_servers = 4
	max_requests_per_server = 0
}

$INCLUDE clients.conf

modules {
	pap {
		normalise = yes
	}
	chap {
	}
	mschap {
		use_mppe = yes
		require_encryption = no
		require_strong = no
		with_ntdomain_hack = yes
	}
	files {
		filename = @CONFDIR@/users
	}
	detail {
		filename = @CONFDIR@/radacct/detail
		permissions = 0600
		header = "%t"
	}
	eap {
		default_eap_type = mschapv2
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 4096
		md5 {
		}
		mschapv2 {
			send_error = yes
		}
		tls-config tls-common {
			private_key_file = @CONFDIR@/certs/server.key
			certificate_file = @CONFDIR@/certs/server.pem
			ca_file = @CONFDIR@/certs/ca.pem
			ca_path = @CONFDIR@/certs
			fragment_size = 1024
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "1.2"
			ecdh_curve = ""
			cache {
				enable = no
			}
			verify {
			}
			ocsp {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
		peap {
			tls = tls-common
			default_eap_type = mschapv2
			copy_request_to_tunnel = yes
			use_tunneled_reply = yes
			virtual_server = "inner-tunnel"
		}
	}
}

server default {
	listen {
		type = auth
		ipaddr = @ADDRESS@
		port = @PORT@
	}
	listen {
		type = acct
		ipaddr = @ADDRESS@
		port = @ACCTPORT@
	}
	authorize {
		chap
		mschap
		# Before eap, which ends authorize: the users file may choose the EAP type (EAP-Type := TLS).
		files
		eap {
			ok = return
		}
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type CHAP {
			chap
		}
		Auth-Type MS-CHAP {
			mschap
		}
		eap
	}
	preacct {
	}
	accounting {
		detail
	}
	# FreeRADIUS before 3.2.5 signs only EAP replies; BlastRADIUS (CVE-2024-3596) asks for every one.
	post-auth {
		update reply {
			&Message-Authenticator := 0x00
		}
		Post-Auth-Type REJECT {
			eap
			update reply {
				&Message-Authenticator := 0x00
			}
		}
	}
}

server inner-tunnel {
	authorize {
		mschap
		eap {
			ok = return
		}
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type MS-CHAP {
			mschap
		}
		eap
	}
	# FreeRADIUS before 3.2.5 signs only EAP replies; BlastRADIUS (CVE-2024-3596) asks for every one.
	post-auth {
		update reply {
			&Message-Authenticator := 0x00
		}
		Post-Auth-Type REJECT {
			eap
			update reply {
				&Message-Authenticator := 0x00
			}
		}
	}
}
"""


@dataclass
class FreeRadius(RadiusDaemon):
    """One running ``freeradius -X`` (stopped by PID with :meth:`stop`); with ``debug`` off,
    ``freeradius -f``: its thread pool and a log of one line per login, as a deployment runs it."""

    debug: bool = True

    @property
    def log(self) -> Path:
        """Its log: the debug output of ``-X`` (with ``debug``)."""
        return self.confdir / "log" / "radius.log"

    @property
    def detail(self) -> Path:
        """The accounting detail file."""
        return self.confdir / "radacct" / "detail"

    def start(self) -> None:
        """Start it and wait until it listens."""
        self.log.unlink(missing_ok=True)
        self.log.touch()
        # -X: one thread and the whole request trace in the log, for the test's failure message; -f: in
        # the foreground (stopped by PID) but otherwise as deployed, for make bench.
        mode = "-X" if self.debug else "-f"
        self.launch(
            [FREERADIUS, mode, "-l", str(self.log), "-d", str(self.confdir)],
            self.confdir / "log" / "stdout",
            READY,
        )


@dataclass
class RadiusHost:
    """A namespace joined to the test's own namespace by a veth /30: the test process talks to
    ``address`` (in the namespace) from ``local_address``."""

    namespace: Namespace
    address: str
    local_address: str
    servers: list[FreeRadius] = field(default_factory=list)

    def freeradius(
        self,
        confdir: Path,
        users: Sequence[RadiusUser],
        *,
        port: int = 1812,
        clients: Sequence[RadiusClientEntry] = (),
        server_certificate: Issued | None = None,
        debug: bool = True,
    ) -> FreeRadius:
        """Configure and start a FreeRADIUS on ``address:port``; the test process and ``radclient`` (run
        inside the namespace) are its clients besides ``clients``. ``debug`` off: ``-f``, not ``-X``."""
        entries = [
            RadiusClientEntry("pysstp", f"{self.local_address}/32"),
            # radclient runs in the namespace: its requests come from the namespace's own address.
            RadiusClientEntry("radclient", f"{self.address}/32"),
            *clients,
        ]
        write_config(
            confdir,
            address=self.address,
            port=port,
            users=users,
            clients=entries,
            server_certificate=server_certificate,
        )
        server = FreeRadius(self.namespace, confdir, self.address, port, debug=debug)
        self.servers.append(server)
        server.start()
        return server

    def radclient(self, server: FreeRadius, attributes: str, kind: str = "auth") -> str:
        """Send one request with ``radclient`` from inside the namespace; its output."""
        result = subprocess.run(
            [
                "ip", "netns", "exec", self.namespace.name,
                "radclient", "-x", "-r", "1", "-t", "5",
                f"{server.address}:{server.port if kind == 'auth' else server.port + 1}",
                kind, SECRET.decode(),
            ],
            input=attributes, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return result.stdout + result.stderr


def detail_records(detail: Path) -> list[dict[str, str]]:
    """The detail file's records as attribute dictionaries (the first value of each attribute)."""
    parsed: list[dict[str, str]] = []
    if not detail.exists():
        return parsed
    for block in detail.read_text().split("\n\n"):
        lines = [line.strip() for line in block.splitlines()[1:] if " = " in line]
        if lines:
            record: dict[str, str] = {}
            for line in lines:
                name, _, value = line.partition(" = ")
                record.setdefault(name, value.strip('"'))
            parsed.append(record)
    return parsed


def _subnet(tag: int) -> tuple[str, str]:
    """A /30 of 10.252.0.0/14 for this process and tag: (far end, near end)."""
    base = ((os.getpid() * 64 + tag) % (1 << 16)) * 4
    prefix = f"10.{252 + (base >> 16) % 4}.{(base >> 8) & 0xFF}"
    return f"{prefix}.{(base & 0xFF) + 2}", f"{prefix}.{(base & 0xFF) + 1}"


@pytest.fixture
def radius_host() -> Iterator[RadiusHost]:
    """A namespace for FreeRADIUS instances, reachable from the test process; removed afterwards."""
    yield from _radius_host()


@pytest.fixture
def second_radius_host() -> Iterator[RadiusHost]:
    """Another one, for failover."""
    yield from _radius_host()


def _radius_host() -> Iterator[RadiusHost]:
    skip_unless_freeradius()
    tag = next(_counter)
    name = f"pysstp-r{os.getpid() % 100000}-{tag}"
    namespace = Namespace(name)
    far, near = _subnet(tag)
    near_link, far_link = f"rn{os.getpid() % 100000}x{tag}"[:15], f"rf{os.getpid() % 100000}x{tag}"[:15]
    host = RadiusHost(namespace, far, near)
    try:
        namespace.add()
        run("ip", "link", "add", near_link, "type", "veth", "peer", "name", far_link, "netns", name)
        run("ip", "addr", "add", f"{near}/30", "dev", near_link)
        run("ip", "link", "set", near_link, "up")
        namespace.run("ip", "addr", "add", f"{far}/30", "dev", far_link)
        namespace.run("ip", "link", "set", far_link, "up")
        yield host
    finally:
        for server in host.servers:
            server.stop()
        delete_namespace(namespace)
        run("ip", "link", "del", near_link, check=False)


@contextlib.contextmanager
def radius_host_behind(owner: Namespace) -> Iterator[RadiusHost]:
    """A namespace for FreeRADIUS on a /24 behind ``owner`` (where ``pysstp server`` runs, at
    10.203.0.1); FreeRADIUS listens at 10.203.0.2. Removed afterwards."""
    skip_unless_freeradius()
    tag = next(_counter)
    namespace = Namespace(f"pysstp-r{os.getpid() % 100000}-{tag}")
    host = RadiusHost(namespace, "10.203.0.2", "10.203.0.1")
    try:
        attach_lan(owner, namespace, f"r{os.getpid() % 100000}x{tag}", host.local_address, host.address)
        yield host
    finally:
        for server in host.servers:
            server.stop()
        delete_namespace(namespace)
