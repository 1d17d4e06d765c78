"""Dialing: TCP and TLS to the server, then a :class:`~pysstp.link.ClientLink` on top."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from pysstp.connection import Deliver, LinkConnection
from pysstp.link import ClientConfig, ClientLink, LinkEvent


class ClientConnection(LinkConnection):
    """The client's one call."""

    link: ClientLink

    def started(self, now: float) -> None:
        """The crypto binding hashes the certificate TLS saw, so take it before the link starts."""
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.link.set_server_certificate(der)
        self.link.start(now)


async def dial(
    config: ClientConfig,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    deliver: Deliver,
    on_event: Callable[[LinkConnection, LinkEvent], None],
    server_hostname: str | None = None,
) -> ClientConnection:
    """Open TCP and TLS to ``host:port`` and start the call; returns once TLS is up."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: ClientConnection(ClientLink(config), deliver=deliver, on_event=on_event),
        host=host,
        port=port,
        ssl=ssl_context,
        server_hostname=server_hostname if server_hostname is not None else config.host,
    )
    assert isinstance(protocol, ClientConnection)
    return protocol
