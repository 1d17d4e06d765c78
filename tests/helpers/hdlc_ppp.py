"""pysstp's own PPP session playing pppd for a third-party SSTP program, as the interop harnesses need it.

Both sstpc (``--nolaunchpppd``) and sorz's sstpd relay PPP to pppd as RFC 1662 async HDLC and learn the
MPPE keys for the crypto binding only from pppd's plugin (``sstp-pppd-plugin.so``), over a unix socket.
:class:`HdlcPpp` puts a :class:`~pysstp.ppp.session.PppSession` (either role) behind such an HDLC byte
stream, with its timers on the running event loop; :func:`hand_keys_to_plugin_socket` plays the plugin.
The plugin message is sstp-client's ``src/sstp-api.h``, which sstpd speaks too.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path

from pysstp.ppp.auth.keys import MASTER_KEY_SIZE, ZERO_HLAK
from pysstp.ppp.constants import Protocol, Role
from pysstp.ppp.frame import IPV4_PREFIX, encode_frame
from pysstp.ppp.hdlc import HdlcDecoder, hdlc_encode
from pysstp.ppp.session import PppSession, SessionOutput

# sstp-client's src/sstp-api.h: the message the pppd plugin sends, in native byte order.
PLUGIN_MAGIC = 0x73737470  # "sstp"
PLUGIN_MSG_AUTH = 1
PLUGIN_MSG_ACK = 3
PLUGIN_ATTR_MPPE_SEND_KEY = 1
PLUGIN_ATTR_MPPE_RECV_KEY = 2
PLUGIN_HEADER = struct.Struct("=IHH")
PLUGIN_ATTR_HEADER = struct.Struct("=HH")


def plugin_auth_message(send_key: bytes | None, recv_key: bytes | None) -> bytes:
    """What sstp-pppd-plugin.so sends after authentication: AUTH with pppd's MPPE master keys.

    Without keys (PAP) sstpc uses a zero HLAK. Attribute data is padded to 4 bytes.
    """
    attributes = b""
    for attribute, key in ((PLUGIN_ATTR_MPPE_SEND_KEY, send_key), (PLUGIN_ATTR_MPPE_RECV_KEY, recv_key)):
        if key is not None:
            padding = bytes(-len(key) % 4)
            attributes += PLUGIN_ATTR_HEADER.pack(attribute, len(key)) + key + padding
    return PLUGIN_HEADER.pack(PLUGIN_MAGIC, len(attributes), PLUGIN_MSG_AUTH) + attributes


def plugin_message_for_hlak(hlak: bytes, role: Role) -> bytes:
    """The plugin's AUTH message as the pppd of ``role`` sends it for a session with this HLAK.

    The HLAK is client MasterSendKey ‖ client MasterReceiveKey (pysstp.ppp.auth.keys), and the plugin
    reports its own pppd's send and receive keys, so a server-side pppd names the halves the other way
    round. A zero HLAK means no keys (PAP): the plugin then sends none.
    """
    if hlak == ZERO_HLAK:
        return plugin_auth_message(None, None)
    client_send, client_recv = hlak[:MASTER_KEY_SIZE], hlak[MASTER_KEY_SIZE:]
    if role is Role.CLIENT:
        return plugin_auth_message(client_send, client_recv)
    return plugin_auth_message(client_recv, client_send)


async def hand_keys_to_plugin_socket(path: Path | str, message: bytes, timeout: float) -> bytes:
    """Play sstp-pppd-plugin.so: send ``message`` on the unix socket at ``path``; return the 8-byte ACK.

    Raises AssertionError when the answer is not an ACK.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    try:
        writer.write(message)
        await writer.drain()
        ack = await asyncio.wait_for(reader.readexactly(PLUGIN_HEADER.size), timeout)
    finally:
        writer.close()
    magic, _, kind = PLUGIN_HEADER.unpack(ack)
    if (magic, kind) != (PLUGIN_MAGIC, PLUGIN_MSG_ACK):
        raise AssertionError(f"unexpected answer on the plugin socket {path}: {ack.hex(' ')}")
    return ack


class HdlcPpp:
    """A :class:`PppSession` behind an async HDLC byte stream, driven by the running event loop.

    ``write`` gets HDLC bytes for the peer; :meth:`feed` takes bytes from it. IPv4 packets go past the
    session (as in pysstp's own links) to ``on_ipv4``; session events go to ``on_event``. An exception in
    a timer goes to ``on_error`` (nothing awaits a timer); :meth:`feed` raises to its caller.
    """

    def __init__(
        self,
        session: PppSession,
        write: Callable[[bytes], None],
        *,
        on_event: Callable[[SessionOutput], None],
        on_ipv4: Callable[[bytes], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.session = session
        self._write = write
        self._on_event = on_event
        self._on_ipv4 = on_ipv4
        self._on_error = on_error
        self._decoder = HdlcDecoder()
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self.started = False

    def start(self) -> None:
        """Start the session (LCP goes out); once only."""
        if not self.started:
            self.started = True
            self.session.start(asyncio.get_running_loop().time())
            self.flush()

    def stop(self) -> None:
        """No more timers; the session is left as it is."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def feed(self, data: bytes) -> None:
        """HDLC bytes from the peer."""
        now = asyncio.get_running_loop().time()
        for frame in self._decoder.feed(data):
            if frame.startswith(IPV4_PREFIX):
                self._on_ipv4(frame[len(IPV4_PREFIX) :])
            else:
                self.session.receive_frame(frame, now)
        self.flush()

    def send(self, protocol: int, packet: bytes) -> None:
        """Frame one packet; encode_frame adds ``ff 03``, which the relays pass on and strict peers need."""
        self._write(hdlc_encode(encode_frame(protocol, packet)))

    def send_ipv4(self, packet: bytes) -> None:
        """Send an IPv4 packet to the peer."""
        self.send(Protocol.IPV4, packet)

    def flush(self) -> None:
        """Send what the session has queued, hand on its events, re-arm the timer."""
        for protocol, packet in self.session.take_outgoing():
            self.send(protocol, packet)
        for event in self.session.take_events():
            self._on_event(event)
        self._schedule_timer()  # every input may move the next deadline

    def _schedule_timer(self) -> None:
        """Keep one loop timer at the session's next deadline (a handle, not a task: nothing to await)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.next_deadline()
        if deadline is not None and not self._stopped:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.session.handle_timer(asyncio.get_running_loop().time())
            self.flush()
        except Exception as exc:
            self._on_error(exc)
