"""A private, patched SoftEther VPN server for interop tests (docs/interop.md, the SoftEther rows).

Debian bookworm's ``vpnserver`` (5.01.9674, upstream snapshot 81810395) drops every SSTP connection
because of an upstream bug fixed only later (commit 5611156c). :func:`patch_binary` fixes a *private copy*
with a four-hunk patch that is applied only to the exact binary it was made for (sha256 checked before and
after). The copy runs:

* with all its state in a temporary directory: SoftEther's state paths are compile-time constants
  (/var/lib/softether, /var/log/softether, /run/softether), so the state directory's folders are bind
  mounted over them in a private mount namespace;
* in its own network namespace that has only ``lo``, listening on 127.0.0.1;
* in the foreground, stopped by PID (SIGTERM, SIGKILL after 10 s). ``vpnserver stop`` is never used: it may
  ``killall -KILL vpnserver``, which would hit a system-wide SoftEther too.

The system's SoftEther (its service, config, logs) is never started, read or changed. The only trace on
the host are the three empty mount points, made only when missing and removed again afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace, stop_process

STOCK_BINARY = Path("/usr/libexec/softether/vpnserver/vpnserver")
VPNCMD = Path("/usr/libexec/softether/vpncmd/vpncmd")
STOCK_SHA256 = "487e51a73f152c9042837975044edd6d11cef4f29eaff2162512f2b897054212"
PATCHED_SHA256 = "0794d20d5ab60047521d85cd718a47edd833920025a4a37edf5a24e26e6709f9"

# (file offset, original bytes, patched bytes); offsets are virtual addresses in this binary.
# ProtoHandleConnection() never sets its "container" when a protocol is asked for by name, and GCC turned
# the later NULL dereference into "return false". The patch keeps the matching container (r12) and the
# socket (r14) alive across StrCmp() and, on a match, jumps through a stub in the alignment padding in
# front of the function to the path that protocol auto-detection takes once it has found its container.
PATCHES: tuple[tuple[int, str, str], ...] = (
    (0x39FC3, "66662e0f1f840000000000", "4c89f34c89e0e9de000000"),  # stub: rbx=r14, rax=r12, jmp 0x3a0ac
    (0x3A00F, "488b470831db4889c24885c07528eb3190", "4989de488b570831db4885d27528eb3190"),  # r14 = sock
    (0x3A020, "488b521089d84889ee488b04c2488b38", "488b52104889ee4c8b24da498b3c2490"),  # r12 = list[i]
    (0x3A037, "7417", "748a"),  # on a name match: to the stub instead of "return false"
)

# SoftEther's compiled-in state directories, and the state-dir folder bind mounted over each.
STATE_MOUNTS = {
    "db": Path("/var/lib/softether"),
    "log": Path("/var/log/softether"),
    "pid": Path("/run/softether"),
}

HUB = "TEST"
USER = "alice"
PASSWORD = "alicepw"
SERVER_NAME = "sstp.test"
"""The name in the server's certificate; it listens on 127.0.0.1, which the certificate also names."""
SECURENAT_GATEWAY = "192.168.30.1"
"""SecureNAT's virtual host: IPCP's peer address and DNS server, and what answers pings."""
SECURENAT_FIRST_LEASE = "192.168.30.10"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
VPNCMD_TIMEOUT = 30.0

# The bootstrap config: SoftEther fills in every missing item with its default and rewrites the file at
# start. What is set here keeps it quiet on the network (no keep-alive pings, dynamic DNS, NAT traversal,
# VPN Azure, UDP ports or IPv6 listener), gives it one TCP listener on 127.0.0.1, turns OpenVPN off and SSTP
# on, and turns DoS protection off: it would throttle a test's quick successive connections from one
# address.
BOOTSTRAP_CONFIG = """\
declare root
{{
	declare DDnsClient
	{{
		bool Disabled true
	}}
	declare ListenerList
	{{
		declare Listener0
		{{
			bool DisableDos true
			bool Enabled true
			uint Port {port}
		}}
	}}
	declare ServerConfiguration
	{{
		bool DisableDosProtection true
		bool DisableIPv6Listener true
		bool DisableNatTraversal true
		bool EnableVpnAzure false
		bool EnableVpnOverDns false
		bool EnableVpnOverIcmp false
		string ListenIP 127.0.0.1
		string PortsUDP $
		bool UseKeepConnect false
		declare Proto
		{{
			declare OpenVPN
			{{
				bool Enabled false
			}}
			declare SSTP
			{{
				bool Enabled true
			}}
		}}
	}}
}}
"""


class SoftEtherUnavailable(Exception):
    """SoftEther cannot run here (not installed, another binary, not root); the message says why."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_available() -> None:
    """Raise :class:`SoftEtherUnavailable` unless a patched SoftEther can run on this machine."""
    if os.geteuid() != 0:
        raise SoftEtherUnavailable("needs root: network and mount namespaces, bind mounts, TUN devices")
    for path, package in ((STOCK_BINARY, "softether-vpnserver"), (VPNCMD, "softether-vpncmd")):
        if not path.is_file():
            raise SoftEtherUnavailable(f"{path} is missing: install {package} ('make system-deps' does)")
    for tool in ("ip", "unshare", "nsenter", "ss"):
        if shutil.which(tool) is None:
            raise SoftEtherUnavailable(f"needs {tool!r} (iproute2 / util-linux)")
    digest = sha256_file(STOCK_BINARY)
    if digest != STOCK_SHA256:
        raise SoftEtherUnavailable(
            f"{STOCK_BINARY} has sha256 {digest}, not the bookworm build ({STOCK_SHA256}) that the SSTP "
            "fix was made for; the binary patch would not fit"
        )


def patch_binary(source: Path, target: Path) -> None:
    """Write the fixed copy of ``source`` to ``target`` (executable), refusing anything but the exact
    binary the patch was made for, and checking the result's hash too."""
    data = bytearray(source.read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != STOCK_SHA256:
        raise SoftEtherUnavailable(f"{source}: sha256 {digest} is not {STOCK_SHA256}; not patching")
    for offset, original, patched in PATCHES:
        old, new = bytes.fromhex(original), bytes.fromhex(patched)
        if len(old) != len(new) or data[offset : offset + len(old)] != old:
            raise SoftEtherUnavailable(f"{source}: unexpected bytes at {offset:#x}; not patching")
        data[offset : offset + len(new)] = new
    result = hashlib.sha256(data).hexdigest()
    if result != PATCHED_SHA256:
        raise SoftEtherUnavailable(f"the patched binary has sha256 {result}, expected {PATCHED_SHA256}")
    target.write_bytes(data)
    target.chmod(0o755)


@dataclass
class SoftEther:
    """One running private SoftEther server: its namespace, state directory, process and certificate."""

    namespace: Namespace
    state: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    cert: Path = field(default=Path())
    created_mount_points: list[Path] = field(default_factory=list)

    @property
    def log(self) -> Path:
        """The server's stdout: in foreground mode SoftEther writes its server log lines there too."""
        return self.state / "stdout.log"

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log.read_text(errors="replace")

    # -- start ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Patched binary, hamcore, certificate and bootstrap config in the state directory."""
        bin_dir = self.state / "bin"
        bin_dir.mkdir()
        for folder in STATE_MOUNTS:
            (self.state / folder).mkdir()
        patch_binary(STOCK_BINARY, bin_dir / "vpnserver")
        # SoftEther reads its strings and resources from hamcore.se2 next to the executable.
        (bin_dir / "hamcore.se2").symlink_to((STOCK_BINARY.parent / "hamcore.se2").resolve())
        # RSA: SoftEther's ServerCertSet accepts only RSA 1024/2048 (error 77 for P-256).
        self.cert, _, _ = make_certificate(self.state, SERVER_NAME, rsa_key=True)
        (self.state / "db" / "vpn_server.config").write_text(BOOTSTRAP_CONFIG.format(port=self.port))

    def start(self) -> None:
        """Start the server in the namespace, in a private mount namespace, and wait for its listener."""
        for mount_point in STATE_MOUNTS.values():
            if not mount_point.exists():
                mount_point.mkdir(parents=True)
                self.created_mount_points.append(mount_point)
        mounts = " && ".join(
            f"mount --bind {shlex.quote(str(self.state / folder))} {shlex.quote(str(target))}"
            for folder, target in STATE_MOUNTS.items()
        )
        binary = shlex.quote(str(self.state / "bin" / "vpnserver"))
        # ip netns exec, unshare and sh all exec, so the PID we get is the server's own PID.
        script = f"{mounts} && exec {binary} start --foreground"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace.name, "unshare", "--mount", "--propagation",
                 "private", "sh", "-c", script],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self._wait_for_listener()

    def _wait_for_listener(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            listening = self.namespace.run("ss", "-ltnH", check=False).stdout
            if f"127.0.0.1:{self.port} " in listening:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"vpnserver exited ({self.process.returncode}):\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"vpnserver did not listen within {START_TIMEOUT:g} s:\n{self.log_text()}")
            time.sleep(0.1)

    # -- administration ------------------------------------------------------------------------------

    def vpncmd(self, *commands: str, hub: str | None = None) -> str:
        """Run ``commands`` with vpncmd in the server's network and mount namespaces (so it reaches the
        127.0.0.1 listener and reads files from the state directory, and writes nothing on the host);
        raise unless every command succeeded. Returns vpncmd's output."""
        assert self.process is not None
        script = self.state / "commands.vpncmd"
        script.write_text("".join(f"{command}\n" for command in commands))
        args = [str(VPNCMD), f"127.0.0.1:{self.port}", "/SERVER", f"/IN:{script}"]
        if hub is not None:
            args.append(f"/ADMINHUB:{hub}")
        result = subprocess.run(
            ["nsenter", "-t", str(self.process.pid), "-n", "-m", *args],
            capture_output=True,
            text=True,
            timeout=VPNCMD_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        done = output.count("The command completed successfully.")
        if result.returncode != 0 or done != len(commands):
            raise RuntimeError(f"vpncmd: {done} of {len(commands)} commands succeeded:\n{output}")
        return output

    def configure(self) -> None:
        """Certificate, hub TEST with user alice/alicepw, SecureNAT (DHCP on, NAT off)."""
        self.vpncmd(
            f"ServerCertSet /LOADCERT:{self.cert} /LOADKEY:{self.cert.with_name('key.pem')}",
            "ProtoOptionsSet SSTP /NAME:Enabled /VALUE:yes",
            f"HubCreate {HUB} /PASSWORD:hubadminpw",
            # The default hub for PPP users whose name carries no hub, so plain "alice" logs in.
            f"IPsecEnable /L2TP:no /L2TPRAW:no /ETHERIP:no /PSK:unused /DEFAULTHUB:{HUB}",
            f"Hub {HUB}",
            f"UserCreate {USER} /GROUP:none /REALNAME:none /NOTE:none",
            f"UserPasswordSet {USER} /PASSWORD:{PASSWORD}",
            # SecureNAT's virtual DHCP server is where IPCP's addresses come from; its NAT would forward
            # tunnel traffic to real sockets, which a test has no use for.
            "SecureNatEnable",
            "NatDisable",
        )

    def session_count(self) -> int:
        """How many sessions the hub has now (from vpncmd's SessionList)."""
        output = self.vpncmd(f"Hub {HUB}", "SessionList")
        return output.count("Session Name")

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM the server by PID (it saves its config and exits in about a second), SIGKILL after
        :data:`STOP_TIMEOUT`."""
        if self.process is not None:
            stop_process(self.process, STOP_TIMEOUT)

    def remove(self) -> None:
        """Stop the server, delete the namespace, the state directory and the mount points we made."""
        try:
            self.stop()
        finally:
            delete_namespace(self.namespace)
            shutil.rmtree(self.state, ignore_errors=True)
            for mount_point in self.created_mount_points:
                # Only while still empty: something else may have started using it meanwhile.
                with contextlib.suppress(OSError):
                    mount_point.rmdir()


@contextlib.contextmanager
def running_softether(port: int = 8443) -> Iterator[SoftEther]:
    """A configured private SoftEther in a new namespace; everything is removed on the way out, also when
    starting it failed. Raises :class:`SoftEtherUnavailable` (before changing anything) where it cannot
    run."""
    check_available()
    namespace = Namespace(f"pysstp-se{os.getpid() % 100000}")
    server = SoftEther(namespace, Path(tempfile.mkdtemp(prefix="pysstp-softether-")), port)
    try:
        namespace.add()
        server.prepare()
        server.start()
        server.configure()
        yield server
    finally:
        server.remove()
