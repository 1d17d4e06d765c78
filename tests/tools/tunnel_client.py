"""A minimal tunnel client for the server's end-to-end tests: dial, bring up a TUN, carry packets.

Prints ``UP <local> <peer>`` once the call is up and ``DOWN <error> <reason>`` when it ends; exits on
SIGTERM after closing the call in order and undoing every network change.
usage: tunnel_client.py HOST PORT CAFILE USER PASSWORD AUTH IFNAME
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

from pysstp.client.dial import dial
from pysstp.connection import LinkConnection
from pysstp.link import ClientConfig, LinkDown, LinkEvent, LinkUp
from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import set_link
from pysstp.ppp.constants import AuthMethod


async def main(host: str, port: int, cafile: str, user: str, password: str, auth: str, ifname: str) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    changes = NetworkChanges()
    tun = changes.open_tun(ifname)

    def on_event(connection: LinkConnection, event: LinkEvent) -> None:
        if isinstance(event, LinkUp):
            changes.add_address(ifname, f"{event.local_address}/32", peer=str(event.peer_address))
            set_link(ifname, up=True, mtu=event.mtu)
            print("UP", event.local_address, event.peer_address, flush=True)
        elif isinstance(event, LinkDown):
            print("DOWN", int(event.error), event.reason, flush=True)
            done.set()

    context = ssl.create_default_context(cafile=cafile)
    methods = (AuthMethod(auth),) if auth != "auto" else ()
    connection = await dial(
        ClientConfig(host="sstp.test", username=user, password=password, auth_methods=methods),
        host,
        port,
        context,
        deliver=lambda _c, packet: tun.write(packet),
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
    sys.exit(asyncio.run(main(host, int(port), cafile, user, password, auth, ifname)))
