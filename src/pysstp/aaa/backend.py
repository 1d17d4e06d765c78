"""Who decides a login: the :class:`AuthBackend` protocol, what it is asked and what it answers.

A PPP authenticator never checks a proof itself: it emits a
:class:`~pysstp.ppp.auth.verification.Verification` (method, user name, proof) and is told the verdict
later (docs/architecture.md, "Authentication"). The server's shell hands that question to its backend
together with a :class:`CallContext` (who is calling, which session) and feeds the :class:`Answer` back
into the link. A slow backend (a RADIUS server across
the network) thus delays only the login that waits for it.

Backends: the local user file (:mod:`pysstp.aaa.local`), RADIUS (:mod:`pysstp.aaa.radius`), and the login
back-off as a wrapper around either (:mod:`pysstp.server.backoff`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Protocol

from pysstp.ppp.auth.verification import Verdict, Verification

IpNetwork = IPv4Network | IPv6Network


def pushed_network(text: str) -> IpNetwork:
    """``text`` as a network a client may be told to route into the tunnel (``push.routes``, a user's
    ``push_routes``, RADIUS); :class:`ValueError` saying what is wrong otherwise."""
    try:
        network = ip_network(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a network such as 10.99.0.0/16 or 2001:db8:99::/48 ({exc})"
        ) from None
    if network.is_multicast or network.is_loopback or network.is_link_local:
        raise ValueError(f"{network} cannot be routed into the tunnel")
    return network


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a backend's yes decides about the session (RFC 2865 §5 reply attributes; the user file).

    ``None`` and empty values mean "the server's own setting".
    """

    address: IPv4Address | None = None
    """A fixed tunnel address; ``None``: one from the pool (RADIUS Framed-IP-Address 255.255.255.254)."""
    pool: str | None = None
    """A named pool (RADIUS Framed-Pool) instead of the default one."""
    routes: tuple[IpNetwork, ...] = ()
    """Networks behind the client, routed into its session (Framed-Route; the user file's ``routes``)."""
    ipv6_prefix: IPv6Network | None = None
    """Framed-IPv6-Prefix, when IPv6 is on."""
    session_timeout: float | None = None
    """Seconds the session may last (Session-Timeout)."""
    idle_timeout: float | None = None
    """Seconds without traffic before the session ends (Idle-Timeout)."""
    interim_interval: float | None = None
    """Seconds between accounting Interim-Updates (Acct-Interim-Interval)."""
    classes: tuple[bytes, ...] = ()
    """Class attributes, echoed in every accounting request of the session (RFC 2865 §5.25)."""
    dns: tuple[IPv4Address, ...] = ()
    """DNS servers for the client (MS-Primary/Secondary-DNS-Server)."""
    push_routes: tuple[IpNetwork, ...] = ()
    """Networks the client routes into the tunnel (split tunnel: DHCPINFORM options 121/249, router
    advertisements); not :attr:`routes`, which lie behind the client. Empty: the server's ``push.routes``."""
    domain: str = ""
    """DNS suffix for the client (DHCPINFORM option 15, DNSSL); empty: the server's ``push.domain``."""
    mtu: int | None = None
    """Framed-MTU."""
    max_sessions: int | None = None
    """Sessions this user may hold at once (the user file's ``max_sessions``)."""
    rate_in: int | None = None
    """Bit/s the session may send, client to server, 0 = unlimited (the user file's ``rate_in``,
    WISPr-Bandwidth-Max-Up)."""
    rate_out: int | None = None
    """Bit/s the session may receive, server to client, 0 = unlimited (the user file's ``rate_out``,
    WISPr-Bandwidth-Max-Down)."""
    reply_message: str = ""
    """Reply-Message: logged, and part of the client's failure text on a refusal."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A backend's answer to one :class:`~pysstp.ppp.auth.verification.Verification`: the verdict the
    link takes (:meth:`pysstp.link.ServerLink.answer`), and what a yes decides about the session, which
    stays with the server's shell."""

    verdict: Verdict
    authorization: Authorization = Authorization()


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling: what RADIUS puts in every request of a session (RFC 2865 §5, RFC 2866 §5)."""

    session_id: str
    """Acct-Session-Id: unique per call, also in accounting, status and Disconnect-Requests."""
    calling_station: str
    """The client's real address (Calling-Station-Id), from the PROXY header when there is one."""
    called_station: str
    """The address the client dialled (Called-Station-Id)."""
    nas_port: int
    """A number per call (NAS-Port)."""


class AuthBackend(Protocol):
    """Decides logins. Implementations must not raise for a wrong or unknown user: that is an
    :class:`Answer` with ``success=False``; an exception means the backend itself failed (the call is
    refused with that reason)."""

    name: str
    """What ``pysstp status`` shows: ``local``, ``radius``."""

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        """Answer one verification request of the call ``context``."""
        ...

    def finished(self, context: CallContext) -> None:
        """The call is over: forget any state kept for it (an EAP exchange's RADIUS State)."""
        ...
