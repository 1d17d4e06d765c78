"""The client's lifetime: dial, bring the tunnel up, carry traffic, end in order, and dial again.

One :class:`ClientApp` runs one ``pysstp connect``. Each call is dialed afresh; the
:class:`~pysstp.client.tunnel.Tunnel` outlives the calls, so TUN, routes and DNS stay in place while
``--reconnect`` waits and dials again. Ending (exit, failure, SIGINT, SIGTERM) always goes: close the call
in order (LCP Terminate, CALL_DISCONNECT), wait a little for it, then let the caller undo the system
changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from pysstp.client.dial import ClientConnection, ConnectError, dial
from pysstp.client.login import Login
from pysstp.client.report import call_ended, describe, setup_failure, summary
from pysstp.client.settings import ClientSettings
from pysstp.client.tls import make_context
from pysstp.client.tunnel import Tunnel
from pysstp.link import (
    SERVER_SHUTTING_DOWN,
    AuthenticationFailed,
    CallEvent,
    ClientConfig,
    Ipv4Up,
    Ipv6Up,
    LinkDown,
    LinkUp,
    Phase,
    PhaseChanged,
)

log = logging.getLogger("pysstp.client")

CLOSE_GRACE = 3.0
"""Seconds to wait for the server to acknowledge the end of the call before dropping TCP."""
SETUP_TIMEOUT = 60.0
"""Seconds from TLS up to LinkUp: a server that stalls in PPP does not keep the client waiting forever."""
IPV4_WAIT = 5.0
"""Seconds to wait for IPCP when IPv6CP opened first (the call came up on IPv6 alone)."""
IPV6_WAIT = 2.0
"""Seconds the summary line waits for the address the kernel forms from the server's advertisement."""
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before dial number ``attempt + 1``: exponential, capped, with jitter (half to all of the
    step), so many clients that lost the same server do not all come back in the same second."""
    step = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, attempt - 1))
    return step * (0.5 + rand() / 2)


@dataclass
class _Call:
    """What one dial has seen so far."""

    started: float
    up: asyncio.Future[LinkUp]
    down: asyncio.Future[LinkDown]
    auth_failure: AuthenticationFailed | None = None
    phase: Phase = Phase.DEAD
    connection: ClientConnection | None = None
    steps: list[str] = field(default_factory=list)
    networks: list[Ipv4Up | Ipv6Up] = field(default_factory=list)
    """IPCP/IPv6CP openings of this call, in order; once the tunnel is applied, each also goes to it."""
    applied: bool = False
    ipv4: asyncio.Future[Ipv4Up] | None = None
    """Set while waiting for IPCP after IPv6CP opened first."""
    up_since: float | None = None
    """Loop time of the summary line; ``None`` while the call is not up."""


class ClientApp:
    """``pysstp connect`` without the command line: give it settings, the login and a tunnel, await
    :meth:`run`."""

    def __init__(
        self,
        settings: ClientSettings,
        login: Login,
        tunnel: Tunnel,
        stop: asyncio.Event,
        on_up: Callable[[], None] | None = None,
    ) -> None:
        """``on_up`` is called after each call's summary line (``--daemon`` detaches on the first)."""
        self.settings = settings
        self.on_up = on_up
        self.tunnel = tunnel
        self.stop = stop
        self.context = make_context(settings.tls, login.certificate)
        self.config = ClientConfig(
            host=settings.host,
            username=login.user,
            password=login.password,
            auth_methods=settings.auth_methods,
            ipv6=settings.ipv6,
            mru=settings.mru,
            max_peer_mru=settings.mru,
            eap_tls=login.eap_tls,
            peap=login.peap,
        )
        # After the first successful TCP connection, reconnects dial the same address: a DNS answer that
        # changed would otherwise send the dial into the tunnel's own routes.
        self.address = settings.host
        self.last_up: LinkUp | None = None
        if settings.tls.insecure:
            log.warning(
                "TLS: --insecure: the server's certificate is NOT checked; anyone on the path can read "
                "and change this tunnel's traffic. Use --pin-sha256 for a self-signed server instead"
            )

    async def run(self) -> None:
        """Dial, stay up, dial again with ``--reconnect``; return when stopped, raise
        :class:`ConnectError` when giving up.

        ``--reconnect`` dials again after a lost connection and after a pysstp server's shutdown (its
        Terminate-Request says :data:`~pysstp.link.SERVER_SHUTTING_DOWN`: behind a load balancer, another
        node takes the call); after the server ended the call itself otherwise (an administrator's kick,
        its idle timeout: CALL_DISCONNECT or LCP Terminate-Request) only with ``--reconnect-after-kick``
        as well, since dialing straight back would undo the kick.
        """
        failures = 0
        while not self.stop.is_set():
            try:
                down = await self.call()
            except ConnectError as exc:
                if not (self.settings.reconnect and exc.retry):
                    raise
                failures += 1
                if self.settings.max_attempts and failures >= self.settings.max_attempts:
                    raise ConnectError(f"{exc} (gave up after {failures} attempts)", retry=False) from None
                log.warning("%s", exc)
            else:
                if down is None or self.stop.is_set():
                    return
                self._after_call(down)
                failures = 0
            delay = backoff_delay(failures)
            log.info("dialing again in %.1f s", delay)
            await self._sleep(delay)

    def _after_call(self, down: LinkDown) -> None:
        """A call that was up has ended without our asking: say why; raise unless we dial again."""
        if down.error:
            message = f"the connection to the server was lost: {down.reason}"
            if not self.settings.reconnect:
                raise ConnectError(f"{message}; --reconnect dials again")
        else:
            message = f"the server ended the call: {down.reason}"
            if not self.settings.reconnect:
                raise ConnectError(message)
            if not self.settings.reconnect_after_kick and not down.reason.endswith(SERVER_SHUTTING_DOWN):
                raise ConnectError(f"{message}; --reconnect-after-kick dials again after this too")
        log.warning("%s", message)

    async def call(self) -> LinkDown | None:
        """One call: dial it, bring the tunnel up, carry traffic until it ends or we are stopped.

        Returns how a call that was up ended (``None`` when stopped); raises :class:`ConnectError` if
        the call never came up.
        """
        loop = asyncio.get_running_loop()
        call = _Call(started=loop.time(), up=loop.create_future(), down=loop.create_future())
        connection = await self._dial(call)
        if connection is None:
            return None
        call.connection = connection
        peer = connection.transport.get_extra_info("peername") if connection.transport else None
        if peer:
            self.address = peer[0]
        try:
            up = await self._until(call.up, call.down, timeout=SETUP_TIMEOUT)
            if up is None:  # stopped, or the setup timed out
                if not self.stop.is_set():
                    last = call.steps[-1] if call.steps else "nothing after TLS"
                    raise ConnectError(
                        f"the call did not come up within {SETUP_TIMEOUT:g} s; last step: {last}"
                    )
                return None
            if isinstance(up, LinkDown):
                raise ConnectError(
                    setup_failure(up, call.auth_failure, call.phase, bool(self.settings.auth_methods)),
                    retry=call.auth_failure is None,
                )
            assert isinstance(up, LinkUp)  # what call.up holds
            if up.local_address is None and self.settings.ipv6:
                up = await self._with_ipv4(call, up)
            if peer:
                self.tunnel.pin_server(peer[0])
            self.tunnel.apply(up)
            for network in call.networks:
                self.tunnel.network_up(network)
            call.applied = True
            self.tunnel.attach(connection)
            self.last_up = up
            ipv6 = await self._ipv6_address(call)
            log.info("%s (%.2f s)", summary(up, self.settings.ifname, ipv6), loop.time() - call.started)
            call.up_since = loop.time()
            if self.on_up is not None:
                self.on_up()
            down = await self._until(call.down)
            return down if isinstance(down, LinkDown) else None
        finally:
            self.tunnel.attach(None)
            await self._hang_up(call)
            if call.up_since is not None:
                log.info(
                    "%s",
                    call_ended(loop.time() - call.up_since, connection.bytes_in, connection.bytes_out),
                )

    async def _dial(self, call: _Call) -> ClientConnection | None:
        """Dial, unless stopped first (then ``None``)."""
        tls = self.settings.tls
        name = "" if tls.no_sni else (tls.sni or self.settings.host)

        def progress(layer: str, text: str) -> None:
            self._step(call, layer, text, logging.INFO)

        task = asyncio.ensure_future(
            dial(
                self.config,
                self.address,
                self.settings.port,
                self.context,
                deliver=self.tunnel.deliver,
                on_event=lambda connection, event: self._on_event(call, event),
                server_hostname=name,
                tls=tls,
                proxy=self.settings.proxy,
                on_progress=progress,
                on_backpressure=self.tunnel.set_backpressure,
            )
        )
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    def _on_event(self, call: _Call, event: CallEvent) -> None:
        if isinstance(event, LinkUp):
            if not call.up.done():
                call.up.set_result(event)
            return
        if isinstance(event, LinkDown):
            if not call.down.done():
                call.down.set_result(event)
            return
        if isinstance(event, Ipv4Up | Ipv6Up):
            # Either protocol may open first (LinkUp comes with the first), the other one later.
            call.networks.append(event)
            if isinstance(event, Ipv4Up) and call.ipv4 is not None and not call.ipv4.done():
                call.ipv4.set_result(event)
            if call.applied:
                self.tunnel.network_up(event)
        if isinstance(event, AuthenticationFailed):
            call.auth_failure = event
        elif isinstance(event, PhaseChanged) and event.phase not in (Phase.TERMINATE, Phase.DEAD):
            # The phase reached on the way up; the way down passes Terminate and Dead.
            call.phase = event.phase
        step = describe(event)
        if step is not None:
            self._step(call, step.layer, step.text, step.level)

    def _step(self, call: _Call, layer: str, text: str, level: int) -> None:
        elapsed = asyncio.get_running_loop().time() - call.started
        call.steps.append(f"{layer}: {text}")
        log.log(level, "%7.3fs %-7s %s", elapsed, layer, text)

    async def _until(
        self,
        *futures: asyncio.Future[LinkUp] | asyncio.Future[LinkDown] | asyncio.Future[Ipv4Up],
        timeout: float | None = None,
    ) -> LinkUp | LinkDown | Ipv4Up | None:
        """The first of ``futures`` to finish, or ``None`` when stopped or after ``timeout``."""
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({*futures, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        for future in futures:
            if future.done():
                return future.result()
        return None

    async def _with_ipv4(self, call: _Call, up: LinkUp) -> LinkUp:
        """IPv6CP opened first: wait up to :data:`IPV4_WAIT` for IPCP, so the routes, ``--dns`` and the
        summary have IPv4 too (a server without IPv4 leaves ``up`` as it is)."""
        ipv4 = next((network for network in call.networks if isinstance(network, Ipv4Up)), None)
        if ipv4 is None:
            loop = asyncio.get_running_loop()
            call.ipv4 = loop.create_future()
            found = await self._until(call.ipv4, call.down, timeout=IPV4_WAIT)
            if not isinstance(found, Ipv4Up):
                return up
            ipv4 = found
        return dataclasses.replace(
            up, local_address=ipv4.local_address, peer_address=ipv4.peer_address, dns_servers=ipv4.dns_servers
        )

    async def _ipv6_address(self, call: _Call) -> IPv6Address | None:
        """The IPv6 address for the summary: once IPv6CP is up, wait up to :data:`IPV6_WAIT` for the
        kernel to form the global one from the router advertisement (the link-local one otherwise)."""
        if not any(isinstance(network, Ipv6Up) for network in call.networks):
            return None
        deadline = asyncio.get_running_loop().time() + IPV6_WAIT
        while (address := self.tunnel.ipv6_address()) is not None and address.is_link_local:
            if self.stop.is_set() or call.down.done() or asyncio.get_running_loop().time() > deadline:
                break
            await self._sleep(0.05)
        return address

    async def _hang_up(self, call: _Call) -> None:
        """End the call in order and wait up to :data:`CLOSE_GRACE` for the server to agree."""
        connection = call.connection
        if connection is None or connection.closed:
            return
        connection.close("user requested disconnect" if self.stop.is_set() else "closed by pysstp")
        try:
            await asyncio.wait_for(asyncio.shield(call.down), CLOSE_GRACE)
        except TimeoutError:
            log.warning("the server did not confirm the disconnect within %g s; dropping TCP", CLOSE_GRACE)
        if connection.transport is not None and not connection.closed:
            connection.transport.abort()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
