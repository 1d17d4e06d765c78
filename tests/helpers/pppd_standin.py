"""A pppd stand-in for sorz's sstp-server (``sstpd --pppd``), with pysstp's own server-side PPP.

sstpd 0.7.2 runs its pppd program twice:

* at start-up as ``PPPD plugin sstp-pppd-plugin.so notty dryrun``: exit code 0 means the plugin exists,
  and from then on sstpd waits for the MPPE keys on a plugin socket and verifies every client's crypto
  binding with them. This stand-in always says yes: verifying our client's binding is the point.
* per call as ``PPPD /dev/pts/N file CONF LOCAL:REMOTE nodetach plugin sstp-pppd-plugin.so sstp-sock
  PATH ...``, with PPP as async HDLC on that pty. The stand-in runs a
  :class:`~pysstp.ppp.session.PppSession` in the server role there (MS-CHAPv2, one user, IPCP gives the
  client REMOTE), and after authentication hands sstpd the keys on PATH as the real plugin does. It
  answers ICMP echo requests to LOCAL itself, so a ping from the client crosses the whole tunnel.

sstpd runs it with the environment it was started with:

``PYSSTP_STANDIN_USER`` / ``PYSSTP_STANDIN_PASSWORD``
    the one account (default alice / alicepw)
``PYSSTP_STANDIN_WRONG_HLAK``
    hex of 32 bytes to hand sstpd instead of the session's HLAK: a corrupted binding on purpose
``PYSSTP_STANDIN_LOG``
    where this process logs (default: stderr, which sstpd does not read)

It runs with the project's Python (pysstp needs 3.11, sstpd 3.12), through the wrapper script the
harness writes (tests/helpers/interop_sorz.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import sys
import tty
from ipaddress import IPv4Address

from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.ppp.auth.verification import Verification
from pysstp.ppp.constants import AuthMethod, Role
from pysstp.ppp.events import Authenticated, SessionDown
from pysstp.ppp.session import PppConfig, PppSession, ServerNetwork, SessionOutput
from pysstp.udp import internet_checksum

from helpers.hdlc_ppp import HdlcPpp, hand_keys_to_plugin_socket, plugin_message_for_hlak

log = logging.getLogger("pppd-standin")

PLUGIN_TIMEOUT = 5.0
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
ICMP_PROTOCOL = 1
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


def echo_reply(packet: bytes, local: IPv4Address) -> bytes | None:
    """The reply to an ICMP echo request for ``local``; None for any other packet."""
    if len(packet) < IPV4_HEADER.size + 8 or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    _, _, _, _, _, _, protocol, _, source, destination = IPV4_HEADER.unpack_from(packet)
    icmp = packet[header_len:]
    if protocol != ICMP_PROTOCOL or destination != local.packed or icmp[0] != ICMP_ECHO_REQUEST:
        return None
    # Swapping the addresses leaves the header checksum as it is (a sum of the same 16-bit words).
    header = packet[:12] + destination + source + packet[20:header_len]
    reply = bytes([ICMP_ECHO_REPLY, 0, 0, 0]) + icmp[4:]
    checksum = internet_checksum(reply).to_bytes(2, "big")
    return header + reply[:2] + checksum + reply[4:]


class PtyProtocol(asyncio.Protocol):
    """Bytes from sstpd's pty into the PPP session; the end of the pty ends the process."""

    def __init__(self, standin: Standin) -> None:
        self.standin = standin

    def data_received(self, data: bytes) -> None:
        self.standin.ppp.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.standin.finish(f"pty closed ({exc})")


class Standin:
    """One call: the PPP server session on sstpd's pty, and the plugin's part on its socket."""

    def __init__(self, argv: list[str]) -> None:
        self.pty_path = argv[0]
        local, _, remote = next(arg for arg in argv if ":" in arg and arg.count(".") == 6).partition(":")
        self.local, self.remote = IPv4Address(local), IPv4Address(remote)
        self.plugin_socket = argv[argv.index("sstp-sock") + 1] if "sstp-sock" in argv else None
        user = os.environ.get("PYSSTP_STANDIN_USER", "alice")
        password = os.environ.get("PYSSTP_STANDIN_PASSWORD", "alicepw")
        wrong_hlak = os.environ.get("PYSSTP_STANDIN_WRONG_HLAK")
        self.wrong_hlak = bytes.fromhex(wrong_hlak) if wrong_hlak else None
        session = PppSession(
            PppConfig(role=Role.SERVER, auth_methods=(AuthMethod.MSCHAP_V2,)),
            network_for_user=lambda _: ServerNetwork(self.local, self.remote),
        )
        self.backend = LocalBackend(StaticCredentials({user: password}))
        self.ppp = HdlcPpp(
            session, self._write, on_event=self._on_event, on_ipv4=self._on_ipv4, on_error=self._on_error
        )
        self.done = asyncio.Event()
        self.exit_code = 0
        self._writer: asyncio.WriteTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Serve the call until PPP ends or sstpd closes the pty; the exit code."""
        loop = asyncio.get_running_loop()
        fd = os.open(self.pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        pty = os.fdopen(fd, "rb+", buffering=0)
        await loop.connect_read_pipe(lambda: PtyProtocol(self), pty)
        self._writer, _ = await loop.connect_write_pipe(asyncio.Protocol, pty)
        self.ppp.start()
        await self.done.wait()
        self.ppp.stop()
        return self.exit_code

    def finish(self, reason: str, code: int = 0) -> None:
        """End the process with ``code`` (the first reason wins)."""
        if not self.done.is_set():
            log.info("stopping: %s", reason)
            self.exit_code = code
            self.done.set()

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    def _on_error(self, exc: BaseException) -> None:
        log.error("failed: %r", exc)
        self.finish(f"error {exc!r}", 1)

    def _on_ipv4(self, packet: bytes) -> None:
        reply = echo_reply(packet, self.local)
        if reply is not None:
            self.ppp.send_ipv4(reply)

    def _on_event(self, event: SessionOutput) -> None:
        log.info("%s", event)
        if isinstance(event, Verification):
            asyncio.get_running_loop().call_soon(self._answer, event)
        elif isinstance(event, Authenticated) and self.plugin_socket is not None:
            hlak = self.wrong_hlak if self.wrong_hlak is not None else event.hlak
            task = asyncio.create_task(self._hand_keys(hlak))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, SessionDown):
            self.finish(f"PPP down: {event.reason}", 1 if event.error else 0)

    def _answer(self, question: Verification) -> None:
        """The local backend's answer, outside the flush that reported the question."""
        verdict = self.backend.check(question).verdict
        self.ppp.session.answer(asyncio.get_running_loop().time(), question, verdict)
        self.ppp.flush()

    async def _hand_keys(self, hlak: bytes) -> None:
        assert self.plugin_socket is not None
        try:
            message = plugin_message_for_hlak(hlak, Role.SERVER)
            ack = await hand_keys_to_plugin_socket(self.plugin_socket, message, PLUGIN_TIMEOUT)
            log.info("keys handed to sstpd, ACK %s", ack.hex(" "))
        except Exception as exc:
            self._on_error(exc)


def main(argv: list[str]) -> int:
    """sstpd's pppd command line in, an exit code out."""
    log_path = os.environ.get("PYSSTP_STANDIN_LOG")
    logging.basicConfig(
        filename=log_path,
        level=logging.DEBUG,
        format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s",
    )
    log.info("argv %s", argv)
    if "dryrun" in argv:
        return 0  # "sstp-pppd-plugin.so is there": sstpd will verify crypto bindings
    if not argv or not argv[0].startswith("/dev/"):
        log.error("expected sstpd 0.7's pty path as the first argument")
        return 2
    return asyncio.run(Standin(argv).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
