"""A scripted SSTP server that behaves as SoftEther 5.01 does (docs/interop.md, the SoftEther quirks).

It is written from the recorded bytes, not with pysstp's PPP machinery, so that a misunderstanding in
pysstp's LCP/IPCP cannot hide itself. Behaviour reproduced:

* answers the HTTP request with SoftEther's 200 response and CALL_CONNECT_ACK offering SHA-256 only;
* waits for the client's first LCP Configure-Request, rejects Magic-Number (and PFC/ACFC/Callback), Naks an
  MRU above 1500, acks the rest;
* requests auth EAP first, then MS-CHAPv2 after any Nak, then PAP after another Nak (whatever the Nak
  suggests); a Nak of PAP fails the link;
* sends an LCP Echo-Request (magic 0, "Aho Baka Manuke\\0") before LCP is open;
* MS-CHAPv2 Success without ``M=``; Failure ``E=691 R=0 C=... V=3``; PAP Ack with an empty message;
* never checks the crypto binding; never answers the client's SSTP ECHO_REQUEST; sends its own every
  ``echo_interval`` seconds after CALL_CONNECTED and gives up after 20 s without any packet;
* IPCP: rejects secondary DNS and WINS, Naks 192.168.30.10 with DNS 192.168.30.1, requests 192.168.30.1.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from pysstp.ppp.auth import mschapv2

LCP, PAP, CHAP, EAP, IPCP, IPV6CP, IPV4 = 0xC021, 0xC023, 0xC223, 0xC227, 0x8021, 0x8057, 0x0021
AUTH_OFFERS = (b"\xc2\x27", b"\xc2\x23\x81", b"\xc0\x23")
ECHO_DATA = b"Aho Baka Manuke\x00"
CLIENT_ADDRESS = bytes((192, 168, 30, 10))
SERVER_ADDRESS = bytes((192, 168, 30, 1))
HTTP_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
    b"Date: Wed, 25 Nov 2026 03:07:25 GMT\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
)


def sstp_control(message_type: int, attributes: bytes = b"", count: int = 0) -> bytes:
    """An SSTP control packet."""
    return struct.pack("!BBHHH", 0x10, 1, 8 + len(attributes), message_type, count) + attributes


def sstp_data(protocol: int, code: int, ident: int, body: bytes) -> bytes:
    """An SSTP data packet carrying one PPP control packet with ``ff 03``."""
    ppp = b"\xff\x03" + struct.pack("!HBBH", protocol, code, ident, 4 + len(body)) + body
    return struct.pack("!BBH", 0x10, 0, 4 + len(ppp)) + ppp


def options(body: bytes) -> list[tuple[int, bytes]]:
    """Split a Configure-* body into (type, value) pairs."""
    out, i = [], 0
    while i + 2 <= len(body):
        kind, length = body[i], body[i + 1]
        out.append((kind, body[i + 2 : i + length]))
        i += max(length, 2)
    return out


def option(kind: int, value: bytes) -> bytes:
    """Encode one option."""
    return bytes((kind, 2 + len(value))) + value


@dataclass
class SoftEtherLikeServer:
    """Sans-I/O scripted server: ``receive(data, now)`` returns the bytes it answers with."""

    user: str = "alice"
    password: str = "alicepw"
    echo_interval: float = 3.0
    silence_limit: float = 20.0
    log: list[str] = field(default_factory=list)
    http_done: bool = False
    connected: bool = False
    closed: bool = False
    auth_index: int = 0
    lcp_ack_sent: bool = False
    lcp_ack_received: bool = False
    lcp_request_sent: bool = False
    authenticated: bool = False
    ipcp_up: bool = False
    next_echo: float | None = None
    last_rx: float = 0.0
    ip_received: list[bytes] = field(default_factory=list)
    client_echo_requests: int = 0
    echo_responses: int = 0
    """The client's answers to this server's echo requests."""
    buffer: bytes = b""
    challenge: bytes = b""

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed bytes from the client; return the answer bytes."""
        self.buffer += data
        self.last_rx = now
        out = b""
        if not self.http_done:
            if b"\r\n\r\n" not in self.buffer:
                return b""
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.http_done = True
            out += HTTP_OK
        while len(self.buffer) >= 4:
            length = struct.unpack("!H", self.buffer[2:4])[0] & 0xFFF
            if len(self.buffer) < length:
                break
            packet, self.buffer = self.buffer[:length], self.buffer[length:]
            out += self._packet(packet, now)
        return out

    def handle_timer(self, now: float) -> bytes:
        """SSTP echo every few seconds once connected; give up after a long silence."""
        if self.closed or self.next_echo is None or now < self.next_echo:
            return b""
        if now - self.last_rx > self.silence_limit:
            self.closed = True
            self.log.append("silence: closing")
            return b""
        self.next_echo = now + self.echo_interval
        return sstp_control(8)

    def _packet(self, packet: bytes, now: float) -> bytes:
        if packet[1] & 1:
            return self._control(struct.unpack("!H", packet[4:6])[0], now)
        frame = packet[4:]
        if frame[:2] != b"\xff\x03":
            self.log.append("dropped frame without ff 03")
            return b""
        protocol = struct.unpack("!H", frame[2:4])[0]
        if protocol == IPV4:
            self.ip_received.append(frame[4:])
            return b""
        code, ident, length = struct.unpack("!BBH", frame[4:8])
        return self._ppp(protocol, code, ident, frame[8 : 4 + length])

    def _control(self, message_type: int, now: float) -> bytes:
        if message_type == 1:  # CALL_CONNECT_REQUEST
            nonce = os.urandom(32)
            return sstp_control(2, b"\x00\x04\x00\x28\x00\x00\x00\x02" + nonce, 1)
        if message_type == 4:  # CALL_CONNECTED: never verified
            self.connected = True
            self.next_echo = now + self.echo_interval
            return b""
        if message_type == 8:
            self.client_echo_requests += 1
            return b""
        if message_type == 9:  # ECHO_RESPONSE
            self.echo_responses += 1
            return b""
        if message_type == 6:  # CALL_DISCONNECT
            self.closed = True
            return sstp_data(LCP, 5, 3, b"") + sstp_control(7)
        return b""

    def _auth_request(self, ident: int) -> bytes:
        self.lcp_request_sent = True
        return sstp_data(LCP, 1, ident, option(3, AUTH_OFFERS[self.auth_index]))

    def _ppp(self, protocol: int, code: int, ident: int, body: bytes) -> bytes:
        if protocol == LCP:
            return self._lcp(code, ident, body)
        if protocol == CHAP and code == 2:
            return self._mschapv2_response(ident, body)
        if protocol == PAP and code == 1:
            return self._pap(ident, body)
        if protocol == IPCP:
            return self._ipcp(code, ident, body)
        if protocol == IPV6CP:
            return b""
        return b""

    def _lcp(self, code: int, ident: int, body: bytes) -> bytes:
        if code == 1:
            rejected = [(k, v) for k, v in options(body) if k not in (1, 3)]
            if rejected:
                reply = sstp_data(LCP, 4, ident, b"".join(option(k, v) for k, v in rejected))
            else:
                mru = dict(options(body)).get(1)
                if mru is not None and struct.unpack("!H", mru)[0] > 1500:
                    reply = sstp_data(LCP, 3, ident, option(1, struct.pack("!H", 1500)))
                else:
                    self.lcp_ack_sent = True
                    reply = sstp_data(LCP, 2, ident, body)
            if not self.lcp_request_sent:
                reply += sstp_data(LCP, 9, 0, b"\x00\x00\x00\x00" + ECHO_DATA) + self._auth_request(0)
            return reply
        if code == 2:
            self.lcp_ack_received = True
            return self._maybe_challenge()
        if code == 3:  # a Nak of the auth option: move to the next offer, whatever was suggested
            if self.auth_index + 1 >= len(AUTH_OFFERS):
                self.closed = True
                return sstp_data(LCP, 5, 2, b"")
            self.auth_index += 1
            return self._auth_request(ident + 1)
        if code == 5:
            return sstp_data(LCP, 6, ident, b"")
        if code == 9:
            return sstp_data(LCP, 10, ident, b"\x00\x00\x00\x00" + body[4:])
        return b""

    def _maybe_challenge(self) -> bytes:
        if not (self.lcp_ack_sent and self.lcp_ack_received):
            return b""
        if AUTH_OFFERS[self.auth_index] == b"\xc2\x23\x81":
            self.challenge = os.urandom(16)
            return sstp_data(CHAP, 1, 2, b"\x10" + self.challenge + b"vm")
        return b""

    def _mschapv2_response(self, ident: int, body: bytes) -> bytes:
        value, name = body[1:50], body[50:].decode()
        peer_challenge, nt_response = value[:16], value[24:48]
        password_hash = mschapv2.nt_password_hash(self.password)
        expected = mschapv2.generate_nt_response(self.challenge, peer_challenge, name, password_hash)
        if name.split("\\")[-1] != self.user or expected != nt_response:
            failure = b"E=691 R=0 C=" + self.challenge.hex().upper().encode() + b" V=3"
            return sstp_data(CHAP, 4, ident, failure)
        self.authenticated = True
        success = mschapv2.generate_authenticator_response(
            password_hash, nt_response, peer_challenge, self.challenge, name
        )
        return sstp_data(CHAP, 3, ident, success.encode())

    def _pap(self, ident: int, body: bytes) -> bytes:
        user = body[1 : 1 + body[0]]
        rest = body[1 + body[0] :]
        password = rest[1 : 1 + rest[0]]
        if user.decode().split("\\")[-1] == self.user and password.decode() == self.password:
            self.authenticated = True
            return sstp_data(PAP, 2, ident, b"\x00")
        return sstp_data(PAP, 3, ident, b"\x00")

    def _ipcp(self, code: int, ident: int, body: bytes) -> bytes:
        if code == 1:
            opts = options(body)
            rejected = [(k, v) for k, v in opts if k not in (3, 0x81)]
            if rejected:
                reply = sstp_data(IPCP, 4, ident, b"".join(option(k, v) for k, v in rejected))
            else:
                values = dict(opts)
                if values.get(3) == CLIENT_ADDRESS and values.get(0x81, SERVER_ADDRESS) == SERVER_ADDRESS:
                    reply = sstp_data(IPCP, 2, ident, body)
                else:
                    reply = sstp_data(
                        IPCP, 3, ident, option(3, CLIENT_ADDRESS) + option(0x81, SERVER_ADDRESS)
                    )
            return reply + sstp_data(IPCP, 1, 3, option(3, SERVER_ADDRESS))
        if code == 2:
            self.ipcp_up = True
        return b""
