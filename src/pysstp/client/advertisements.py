"""Router advertisements as the client reads them: the server's RDNSS and DNSSL options (RFC 8106).

The kernel forms the address (SLAAC) and installs Route Information routes (RFC 4191) from the server's
advertisements itself, but leaves DNS servers and search domains to user space. A raw ICMPv6 socket on the
TUN, filtered to router advertisements, gets a copy of each one from the kernel: the data path is not
involved.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

from pysstp import nd
from pysstp.errors import SystemSetupError

log = logging.getLogger("pysstp.client")

ICMP6_FILTER = 1
"""The ICMPv6 socket option that selects message types (RFC 3542 §3.2; linux/icmpv6.h)."""
MAX_MESSAGE = 65535


def _only_router_advertisements() -> bytes:
    """An ``icmp6_filter``: a bit per type, set = blocked; all blocked but type 134."""
    words = [0xFFFFFFFF] * 8
    words[nd.ROUTER_ADVERTISEMENT >> 5] &= ~(1 << (nd.ROUTER_ADVERTISEMENT & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


class AdvertisementListener:
    """Reads the router advertisements that arrive on one interface and hands their options on."""

    def __init__(self, ifname: str, on_options: Callable[[nd.Advertised], None]) -> None:
        self.ifname = ifname
        self.on_options = on_options
        self._socket: socket.socket | None = None

    def open(self) -> None:
        """Start listening (needs CAP_NET_RAW, which ``pysstp connect`` has for its TUN)."""
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as exc:
            raise SystemSetupError(f"cannot read router advertisements: {exc.strerror}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _only_router_advertisements())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise SystemSetupError(
                f"cannot read router advertisements on {self.ifname}: {exc.strerror}"
            ) from exc
        self._socket = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._socket is not None
        try:
            message = self._socket.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("IPv6: cannot read a router advertisement: %s", exc.strerror)
            return
        try:
            options = nd.read_options(message)
        except nd.NdError as exc:
            log.info("IPv6: ignored a router advertisement: %s", exc)
            return
        self.on_options(options)

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._socket is not None:
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
