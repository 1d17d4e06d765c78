"""A minimal tunnel client for the server's end-to-end tests: dial, bring up a TUN, carry packets.

Prints ``UP <local> <peer>`` once the call is up, ``UP6 <link-local>`` once IPv6CP is (with ``ipv6``), and
``DOWN <error> <reason>`` when it ends; exits on SIGTERM after closing the call in order and undoing every
network change. With IPv6 the kernel itself takes the server's router advertisement: it forms
``<prefix>::<interface id>`` from the link-local address and adds the default route.
usage: tunnel_client.py HOST PORT CAFILE USER PASSWORD AUTH IFNAME [ipv6] [mru=BYTES]
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

from pysstp.client.dial import dial
from pysstp.connection import LinkConnection
from pysstp.link import CallEvent, ClientConfig, Ipv4Up, Ipv6Up, LinkDown, LinkUp
from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import set_link
from pysstp.ppp.constants import DEFAULT_MRU, AuthMethod
from pysstp.ppp.ipv6cp import link_local_address


async def main(
    host: str, port: int, cafile: str, user: str, password: str, auth: str, ifname: str, ipv6: bool, mru: int
) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    changes = NetworkChanges()
    tun = changes.open_tun(ifname)
    if ipv6:
        # No kernel-made addresses (a random link-local, SLAAC from it): the server routes only those built
        # from the IPv6CP interface identifier, so the kernel must inherit that one from the link-local.
        changes.set_sysctl(f"net/ipv6/conf/{ifname}/addr_gen_mode", 1)

    def on_event(connection: LinkConnection, event: CallEvent) -> None:
        # Addresses on Ipv4Up/Ipv6Up, not LinkUp: with IPv6, either protocol may open first.
        if isinstance(event, Ipv4Up):
            changes.add_address(ifname, f"{event.local_address}/32", peer=str(event.peer_address))
        elif isinstance(event, LinkUp):
            set_link(ifname, up=True, mtu=event.mtu)
            print("UP", event.local_address, event.peer_address, flush=True)
        elif isinstance(event, Ipv6Up):
            address = link_local_address(event.local_interface_id)
            changes.add_address(ifname, f"{address}/64")
            print("UP6", address, flush=True)
        elif isinstance(event, LinkDown):
            print("DOWN", int(event.error), event.reason, flush=True)
            done.set()

    context = ssl.create_default_context(cafile=cafile)
    methods = (AuthMethod(auth),) if auth != "auto" else ()
    connection = await dial(
        ClientConfig(
            host="sstp.test",
            username=user,
            password=password,
            auth_methods=methods,
            ipv6=ipv6,
            mru=mru,
            max_peer_mru=mru,
        ),
        host,
        port,
        context,
        deliver=lambda _c, packets: tun.write_batch(packets),
        on_event=on_event,
    )
    loop.add_reader(tun.fd, lambda: connection.send_ip_batch(tun.read_batch(64)))
    loop.add_signal_handler(signal.SIGTERM, lambda: connection.close())
    try:
        await done.wait()
    finally:
        loop.remove_reader(tun.fd)
        changes.undo()
    return 0


if __name__ == "__main__":
    host, port, cafile, user, password, auth, ifname = sys.argv[1:8]
    extra = sys.argv[8:]
    mru = next((int(arg.removeprefix("mru=")) for arg in extra if arg.startswith("mru=")), DEFAULT_MRU)
    sys.exit(asyncio.run(main(host, int(port), cafile, user, password, auth, ifname, "ipv6" in extra, mru)))
