"""Events the PPP machines report through ``take_events()``: plain data, one base class, no behaviour.

The RFC 1661 automaton (:mod:`pysstp.ppp.fsm`) and LCP report to the session; the authentication machines
report their one result, which the session passes on as it is; the session reports what its owner (the
link) needs. Each fact is one event: an authentication failure is :class:`AuthenticationFailed` from the
machine that decided it to the shell that logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pysstp.ppp.constants import AuthMethod, Phase, Protocol


@dataclass(frozen=True, slots=True)
class PppEvent:
    """Base of every event a PPP machine reports."""


# -- the RFC 1661 automaton (fsm.py) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayerUp(PppEvent):
    """This-Layer-Up: the protocol reached Opened; its negotiated results are valid."""

    protocol: int


@dataclass(frozen=True, slots=True)
class LayerDown(PppEvent):
    """This-Layer-Down: the protocol left Opened (renegotiation, termination, lower layer down)."""

    protocol: int


@dataclass(frozen=True, slots=True)
class LayerStarted(PppEvent):
    """This-Layer-Started: the automaton needs its lower layer; bring it up and call ``up()``."""

    protocol: int


@dataclass(frozen=True, slots=True)
class LayerFinished(PppEvent):
    """This-Layer-Finished: the automaton no longer needs its lower layer; ``reason`` says why.

    ``error`` is False when the layer ended in order (our Close, the peer's Terminate-Request) and True when
    negotiation failed (no answer, nothing acceptable, a catastrophic Code-Reject or Protocol-Reject).
    """

    protocol: int
    reason: str
    error: bool


@dataclass(frozen=True, slots=True)
class CodeRejected(PppEvent):
    """The peer Code-Rejected a code the automaton can live without (RXJ+), e.g. LCP Echo-Request."""

    protocol: int
    code: int


# -- LCP (lcp.py) -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EchoReplyReceived(PppEvent):
    """The peer answered an LCP Echo-Request (in Opened)."""

    identifier: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ProtocolRejected(PppEvent):
    """The peer Protocol-Rejected ``protocol``: stop sending it (RFC 1661 §5.7)."""

    protocol: int


@dataclass(frozen=True, slots=True)
class IdentificationReceived(PppEvent):
    """LCP Identification (RFC 1570 §2.1); Windows sends e.g. ``MSRASV5.20``."""

    text: str


@dataclass(frozen=True, slots=True)
class TimeRemainingReceived(PppEvent):
    """LCP Time-Remaining (RFC 1570 §2.2): the peer will end the link after ``seconds``."""

    seconds: int
    text: str


# -- authentication (auth/), passed on by the session -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticated(PppEvent):
    """Authentication is complete; ``hlak`` is the 32-byte key for the SSTP crypto binding.

    ``user`` is, on a server, the name under which the credential store knew the user; on a client, the
    name we sent. ``method`` is None when the server asked for no authentication. ``message`` is the text
    of the Success/Ack packet, if any.
    """

    user: str
    method: AuthMethod | None
    hlak: bytes = field(repr=False)
    message: str = ""


@dataclass(frozen=True, slots=True)
class AuthenticationFailed(PppEvent):
    """Authentication failed and the session is terminating; ``reason`` says why in words,
    ``error_code`` is MS-CHAPv2's E= value."""

    user: str | None
    method: AuthMethod
    reason: str
    error_code: int | None = None


AuthEvent = Authenticated | AuthenticationFailed
"""What an authentication machine reports: exactly one of them."""


# -- the session (session.py) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseChanged(PppEvent):
    """The session entered another phase."""

    phase: Phase


@dataclass(frozen=True, slots=True)
class LcpOpened(PppEvent):
    """LCP is up; ``auth_method`` is what the server will use (``None`` for none)."""

    auth_method: AuthMethod | None
    our_mru: int
    peer_mru: int


@dataclass(frozen=True, slots=True)
class Ipv4Up(PppEvent):
    """IPCP is open."""

    local_address: IPv4Address
    peer_address: IPv4Address
    dns_servers: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class Ipv6Up(PppEvent):
    """IPv6CP is open; interface identifiers give the link-local addresses."""

    local_interface_id: bytes
    peer_interface_id: bytes


@dataclass(frozen=True, slots=True)
class NetworkProtocolDown(PppEvent):
    """IPCP or IPv6CP went down or could not be negotiated."""

    protocol: Protocol
    reason: str


@dataclass(frozen=True, slots=True)
class SessionDown(PppEvent):
    """The PPP session is over; ``error`` is False for an orderly close."""

    reason: str
    error: bool


SessionEvent = (
    PhaseChanged
    | LcpOpened
    | Authenticated
    | AuthenticationFailed
    | Ipv4Up
    | Ipv6Up
    | NetworkProtocolDown
    | SessionDown
)
"""Every event a :class:`~pysstp.ppp.session.PppSession` reports."""
