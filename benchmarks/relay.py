"""The reference relay: a bare TUN -> TLS -> TUN data path with SSTP-style framing and nothing else.

No PPP, no SSTP control, no authentication: each side reads its TUN until it would block (at most
:data:`BATCH` packets), frames every packet with the 8-byte SSTP data + PPP header, and hands TLS one joined
buffer; the other side cuts the stream with ``memoryview`` slices and writes each IP packet to its TUN.
That is the design measured before pysstp was written (docs/benchmarks-notes.md, "Per-packet costs"),
plus pysstp's 64 KiB TLS reads (:func:`pysstp.connection.adapt_tls_transport`): the practical ceiling of a
Python tunnel on this machine, against which the benchmark measures pysstp.

Run one end per network namespace::

    python -m benchmarks.relay server --listen 10.0.0.1:4433 --cert c.pem --key k.pem \\
        --tun rly0 --address 10.1.0.2/24
    python -m benchmarks.relay client --connect 10.0.0.1:4433 --tun rly0 --address 10.1.0.1/24
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import struct
from typing import cast

from pysstp.connection import adapt_tls_transport
from pysstp.net.iproute import add_address, make_address, set_link
from pysstp.net.tun import TunDevice

BATCH = 64
"""Packets read from the TUN per wake-up, as in the baseline."""
MTU = 1500
"""As pysstp's TUN gets from the default PPP MRU: the comparison is per packet, so both carry the same size
(the baseline's §7 used 1400)."""
_HEADER = struct.Struct("!BBH")
_PPP_IPV4 = b"\xff\x03\x00\x21"
_OVERHEAD = 8


class Relay(asyncio.Protocol):
    """One end of the relay: a TLS connection and a TUN device."""

    def __init__(self, tun: TunDevice, done: asyncio.Future[None]) -> None:
        self.tun = tun
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start moving packets."""
        # uvloop's TLS transport does not derive from asyncio.Transport.
        self.transport = transport = cast(asyncio.Transport, transport)
        # The same 64 KiB TLS reads as pysstp: about 10 % more TCP for the relay too, and a ceiling should
        # not lack what any tunnel gets from one call.
        adapt_tls_transport(transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop.add_reader(self.tun.fd, self.on_readable)

    def on_readable(self) -> None:
        """Frame one TUN drain and write it in one go."""
        assert self.transport is not None
        pack = _HEADER.pack
        frames = [pack(0x10, 0, len(p) + _OVERHEAD) + _PPP_IPV4 + p for p in self.tun.read_batch(BATCH)]
        if frames:
            self.transport.write(b"".join(frames))

    def data_received(self, data: bytes) -> None:
        """Cut whole frames out of the stream and write their IP packets to the TUN."""
        buffer = self.buffer
        buffer += data
        view = memoryview(buffer)
        end = len(buffer)
        pos = 0
        write = self.tun.write
        while end - pos >= 4:
            length = (buffer[pos + 2] << 8 | buffer[pos + 3]) & 0xFFF
            if pos + length > end:
                break
            write(view[pos + _OVERHEAD : pos + length])
            pos += length
        view.release()
        del buffer[:pos]

    def pause_writing(self) -> None:
        """TLS is backed up: leave packets in the TUN queue (the kernel drops when it is full)."""
        self.loop.remove_reader(self.tun.fd)

    def resume_writing(self) -> None:
        """TLS drained: read the TUN again."""
        self.loop.add_reader(self.tun.fd, self.on_readable)

    def connection_lost(self, exc: Exception | None) -> None:
        """The other end went away: this end is done too."""
        self.loop.remove_reader(self.tun.fd)
        if not self.done.done():
            self.done.set_result(None)


def open_tun(name: str, address: str) -> TunDevice:
    """The relay's TUN with ``address`` (a /24 covering the other end), up."""
    tun = TunDevice.open(name, mtu=MTU)
    add_address(make_address(tun.name, address))
    set_link(tun.name, up=True)
    return tun


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(args: argparse.Namespace) -> None:
    """Accept one TLS connection and relay until it ends or a signal arrives."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    tun = open_tun(args.tun, args.address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    host, port = _host_port(args.listen)
    server = await loop.create_server(lambda: Relay(tun, done), host, port, ssl=context, reuse_address=True)
    print("listening", flush=True)
    await _until_done(done)
    server.close()
    tun.close()


async def connect(args: argparse.Namespace) -> None:
    """Dial the server and relay until the connection ends or a signal arrives."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    tun = open_tun(args.tun, args.address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = _host_port(args.connect)
    transport, _ = await loop.create_connection(lambda: Relay(tun, done), host, port, ssl=context)
    print("connected", flush=True)
    await _until_done(done)
    transport.close()
    tun.close()


async def _until_done(done: asyncio.Future[None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: done.done() or done.set_result(None))
    await done


def main() -> None:
    """Command line: ``server`` or ``client``, see the module doc."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--listen", help="server: host:port")
    parser.add_argument("--connect", help="client: host:port")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tun", required=True)
    parser.add_argument("--address", required=True, help="address/prefix for the TUN")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve(args) if args.role == "server" else connect(args))
    os._exit(0)


if __name__ == "__main__":
    main()
