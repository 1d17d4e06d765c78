"""One PPP session over SSTP, either role: phases, dispatch by protocol, and the results.

The session owns LCP, the authentication machine of the negotiated method, IPCP and (optionally) IPv6CP.
It handles PPP *control* traffic only; IP packets go through the link's data path, which asks
:attr:`PppSession.ipv4_up` / :attr:`PppSession.ipv6_up` before passing them on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address

from pysstp.errors import PppError
from pysstp.ppp import fsm
from pysstp.ppp.auth import make_authenticator, make_peer
from pysstp.ppp.auth.base import (
    ALL_EAP_METHODS,
    EAP_METHODS,
    Authenticator,
    AuthPeer,
    EapMode,
    MachineEvent,
)
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.peap import PeapPeerSettings, PeapServerSettings
from pysstp.ppp.auth.verification import Verdict, Verification
from pysstp.ppp.constants import DEFAULT_MRU, AuthMethod, Phase, Protocol, Role
from pysstp.ppp.events import (
    Authenticated,
    EchoReplyReceived,
    Ipv4Up,
    Ipv6Up,
    LayerDown,
    LayerFinished,
    LayerUp,
    LcpOpened,
    NetworkProtocolDown,
    PhaseChanged,
    PppEvent,
    ProtocolRejected,
    SessionDown,
    SessionEvent,
)
from pysstp.ppp.frame import decode_frame
from pysstp.ppp.ipcp import Ipcp, IpcpConfig
from pysstp.ppp.ipv6cp import Ipv6cp
from pysstp.ppp.lcp import Lcp, LcpConfig
from pysstp.randomness import RandomBytes

AUTH_PROTOCOLS = frozenset({Protocol.PAP, Protocol.CHAP, Protocol.EAP})
DEFAULT_SERVER_AUTH = (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2)
DEFAULT_CLIENT_AUTH = (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP, AuthMethod.CHAP_MD5)


@dataclass(frozen=True, slots=True)
class ServerNetwork:
    """What the server gives one authenticated user: addresses and DNS for IPCP."""

    local_address: IPv4Address
    peer_address: IPv4Address
    dns: tuple[IPv4Address, ...] = ()


SessionOutput = SessionEvent | Verification
"""What :meth:`PppSession.take_events` reports: the session's events, and the authenticator's questions
passed on as they are (for whoever answers them, through :meth:`PppSession.answer`)."""

NetworkForUser = Callable[[str], ServerNetwork | str]
"""Called once per session when the user is authenticated: the addresses, or why there are none."""


@dataclass(frozen=True)
class PppConfig:
    """Everything a PPP session needs, for both roles (fields of the other role are ignored): the same for
    every call of a server, which shares one (what differs per call are :class:`PppSession`'s other
    arguments)."""

    role: Role
    auth_methods: tuple[AuthMethod, ...] = ()
    mru: int = DEFAULT_MRU
    max_peer_mru: int = DEFAULT_MRU
    ipv6: bool = False
    ipv6_interface_id: bytes | None = None
    """Our IPv6CP interface identifier (the server's TUN address); random when None."""
    lcp_echo_interval: float | None = None
    lcp_echo_failures: int = 5
    # client
    username: str = ""
    password: str = field(default="", repr=False)
    request_dns: bool = True
    eap_tls_peer: EapTlsPeerSettings | None = None
    peap_peer: PeapPeerSettings | None = None
    # server
    server_name: str = "pysstp"
    eap_tls_server: EapTlsServerSettings | None = None
    peap_server: PeapServerSettings | None = None
    eap_mode: EapMode = "local"

    def effective_auth_methods(self) -> tuple[AuthMethod, ...]:
        """The configured methods, or the role's defaults."""
        if self.auth_methods:
            return self.auth_methods
        return DEFAULT_SERVER_AUTH if self.role is Role.SERVER else DEFAULT_CLIENT_AUTH

    def eap_methods(self) -> tuple[AuthMethod, ...]:
        """The EAP methods among the configured ones, in order: what runs inside EAP."""
        return tuple(m for m in self.effective_auth_methods() if m in ALL_EAP_METHODS) or EAP_METHODS

    @cached_property
    def lcp(self) -> LcpConfig:
        """What LCP asks for and accepts, made once for all the sessions of this configuration."""
        return LcpConfig(
            role=self.role,
            mru=self.mru,
            max_peer_mru=self.max_peer_mru,
            auth_methods=self.effective_auth_methods(),
        )


class PppSession:
    """PPP for one SSTP call: LCP, then authentication, then IPCP/IPv6CP.

    Feed it PPP frames with :meth:`receive_frame`; drain :meth:`take_outgoing` (protocol, packet) and
    :meth:`take_events`. Data frames (IPv4/IPv6) are not handled here.
    """

    __slots__ = (
        "_echo_due",
        "_echoes_outstanding",
        "_events",
        "_failure",
        "_network_for_user",
        "_outgoing",
        "_random_bytes",
        "auth",
        "auth_method",
        "config",
        "discarded",
        "down_reason",
        "ipcp",
        "ipv6cp",
        "lcp",
        "phase",
        "user",
    )

    def __init__(
        self,
        config: PppConfig,
        *,
        network_for_user: NetworkForUser | None = None,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        """``network_for_user`` (a server's) is asked once the user is authenticated, for the addresses of
        this session or the reason there are none."""
        self.config = config
        self._network_for_user = network_for_user
        self._random_bytes = random_bytes
        self.phase = Phase.DEAD
        self.lcp = Lcp(config.lcp, random_bytes=random_bytes)
        self.ipcp: Ipcp | None = None
        self.ipv6cp: Ipv6cp | None = None
        self.auth: Authenticator | AuthPeer | None = None
        self.user: str | None = None
        self.auth_method: AuthMethod | None = None
        self.down_reason: str | None = None
        self._failure: str | None = None
        # None while empty: an idle session holds no empty lists (docs/scaling.md, "Numbers").
        self._events: list[SessionOutput] | None = None
        self._outgoing: list[tuple[int, bytes]] | None = None
        self._echo_due: float | None = None
        self._echoes_outstanding = 0
        self.discarded = 0

    # -- inputs ------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The SSTP call is ready for PPP: bring LCP up and send our first Configure-Request."""
        self._set_phase(Phase.ESTABLISH)
        self.lcp.up(now)
        self.lcp.open(now)
        self._pump(now)

    def close(self, now: float, reason: str = "closed by local request") -> None:
        """Terminate the session in order (LCP Terminate-Request)."""
        if self.phase is Phase.DEAD:
            return
        self.down_reason = self.down_reason or reason
        self._set_phase(Phase.TERMINATE)
        self.lcp.close(now, reason.encode("utf-8", "replace")[:64])
        self._pump(now)

    def lower_down(self, now: float, reason: str, *, error: bool) -> None:
        """The SSTP call is gone; PPP ends without further packets."""
        if self.phase is Phase.DEAD:
            return
        self.down_reason = self.down_reason or reason
        self.lcp.down(now)
        self._pump(now)
        self._finish(self.down_reason, error=error or self._failure is not None)

    def receive_frame(self, frame: bytes, now: float) -> None:
        """Handle one PPP control frame (``ff 03`` + protocol + packet, compressed forms accepted)."""
        try:
            protocol, packet = decode_frame(frame)
        except PppError:
            self.discarded += 1
            return
        self.receive_packet(protocol, packet, now)

    def receive_packet(self, protocol: int, packet: bytes, now: float) -> None:
        """Handle one PPP packet whose protocol field is already decoded."""
        if self.phase is Phase.DEAD:
            self.discarded += 1
            return
        self._echoes_outstanding = 0
        if protocol == Protocol.LCP:
            self.lcp.receive(packet, now)
        elif self.lcp.state is not fsm.FsmState.OPENED:
            # RFC 1661 §3.4: only LCP is processed before the link is established.
            self.discarded += 1
        elif protocol in AUTH_PROTOCOLS:
            if self.auth is not None and self.auth.protocol == protocol:
                self.auth.receive(packet, now)
            else:
                self.discarded += 1
        elif protocol == Protocol.IPCP and self.ipcp is not None:
            self.ipcp.receive(packet, now)
        elif protocol == Protocol.IPV6CP and self.ipv6cp is not None:
            self.ipv6cp.receive(packet, now)
        elif protocol in (Protocol.IPCP, Protocol.IPV6CP) and self.phase in (
            Phase.AUTHENTICATE,
            Phase.ESTABLISH,
        ):
            # Windows starts the NCPs together with CALL_CONNECTED; before the network phase they are
            # silently discarded (RFC 1661 §3.5) and the peer retransmits.
            self.discarded += 1
        elif protocol in (Protocol.IPV4, Protocol.IPV6):
            self.discarded += 1
        else:
            self.lcp.protocol_reject(protocol, packet)
        self._pump(now)

    def answer(self, now: float, question: Verification, verdict: Verdict) -> None:
        """The answer to ``question``, if it is the authenticator's open :class:`Verification`.

        Anything else is ignored: a peer that renegotiates LCP while a question waits (RFC 1661 §4.1: a
        Configure-Request in the Opened state starts LCP over) gets a new authenticator with a question
        of its own, and the old one's answer (another challenge's S= value and keys) must not decide the
        new exchange.
        """
        if isinstance(self.auth, Authenticator) and self.auth.pending is question:
            self.auth.answer(verdict, now)
            self._pump(now)

    def handle_timer(self, now: float) -> None:
        """Run every timer that is due."""
        for machine in self._machines():
            deadline = machine.next_deadline()
            if deadline is not None and deadline <= now:
                machine.handle_timer(now)
        if self._echo_due is not None and self._echo_due <= now:
            self._lcp_keepalive(now)
        self._pump(now)

    # -- outputs -----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`handle_timer` must run."""
        deadlines = [d for d in (m.next_deadline() for m in self._machines()) if d is not None]
        if self._echo_due is not None:
            deadlines.append(self._echo_due)
        return min(deadlines, default=None)

    def take_outgoing(self) -> list[tuple[int, bytes]]:
        """Packets to send, as (PPP protocol, packet) pairs, in the order they were caused."""
        self._collect_outgoing()
        out, self._outgoing = self._outgoing, None
        return out if out is not None else []

    def take_events(self) -> list[SessionOutput]:
        """Events since the last call."""
        events, self._events = self._events, None
        return events if events is not None else []

    @property
    def ipv4_up(self) -> bool:
        """IPCP is open: IPv4 packets may flow (the SSTP layer adds its own condition)."""
        return self.ipcp is not None and self.ipcp.state is fsm.FsmState.OPENED

    @property
    def ipv6_up(self) -> bool:
        """IPv6CP is open."""
        return self.ipv6cp is not None and self.ipv6cp.state is fsm.FsmState.OPENED

    # -- internals ---------------------------------------------------------------------------------

    def _machines(self) -> list[Lcp | Ipcp | Ipv6cp | Authenticator | AuthPeer]:
        machines: list[Lcp | Ipcp | Ipv6cp | Authenticator | AuthPeer] = [self.lcp]
        if self.auth is not None:
            machines.append(self.auth)
        if self.ipcp is not None:
            machines.append(self.ipcp)
        if self.ipv6cp is not None:
            machines.append(self.ipv6cp)
        return machines

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self.phase:
            self.phase = phase
            self._emit(PhaseChanged(phase))

    def _emit(self, event: SessionOutput) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def _collect_outgoing(self) -> None:
        for machine in self._machines():
            packets = machine.take_outgoing()
            if not packets:
                continue
            if self._outgoing is None:
                self._outgoing = packets
            else:
                self._outgoing.extend(packets)

    def _pump(self, now: float) -> None:
        """Turn the sub-machines' events into phase changes, until nothing new happens.

        Output is collected before each round of reactions, so that what an input caused (an auth
        Failure, a Configure-Ack) leaves before what the session does about it (Terminate-Request, the
        first auth packet): peers such as pppd drop packets that overtake LCP.
        """
        progressed = True
        while progressed:
            progressed = False
            self._collect_outgoing()
            for event in self.lcp.take_events():
                progressed = True
                self._on_lcp_event(event, now)
            if self.auth is not None:
                for auth_event in self.auth.take_events():
                    progressed = True
                    self._on_auth_event(auth_event, now)
            for ncp in (self.ipcp, self.ipv6cp):
                if ncp is not None:
                    for ncp_event in ncp.take_events():
                        progressed = True
                        self._on_ncp_event(ncp, ncp_event, now)

    def _on_lcp_event(self, event: PppEvent, now: float) -> None:
        if isinstance(event, LayerUp):
            self._emit(LcpOpened(self.lcp.auth_method, self.lcp.our_mru, self.lcp.peer_mru))
            self._start_auth(now)
            if self.config.lcp_echo_interval is not None:
                self._echo_due = now + self.config.lcp_echo_interval
        elif isinstance(event, LayerDown):
            if self.lcp.state in (fsm.FsmState.STOPPING, fsm.FsmState.CLOSING):
                # The link is ending (the peer's Terminate-Request says why): remember it now, because
                # the SSTP disconnect that follows may end the call before LCP finishes.
                self.down_reason = self.down_reason or self.lcp.finish_reason
            self._echo_due = None
            for ncp in (self.ipcp, self.ipv6cp):
                if ncp is not None:
                    ncp.down(now)
            if self.phase is Phase.NETWORK and self.lcp.state in (
                fsm.FsmState.REQ_SENT,
                fsm.FsmState.ACK_SENT,
            ):
                # The peer negotiates again on the open link (RFC 1661 §4.1: RCR, RCA or RCN in Opened),
                # which would authenticate again, but the call's crypto binding covers only its first
                # authentication (MS-SSTP 3.2.5.2): end the call instead.
                self._fail("peer started LCP negotiation over after authentication", now)
        elif isinstance(event, LayerFinished):
            self._finish(self.down_reason or event.reason, error=event.error or self._failure is not None)
        elif isinstance(event, ProtocolRejected):
            self._on_protocol_rejected(event.protocol, now)
        elif isinstance(event, EchoReplyReceived):
            self._echoes_outstanding = 0

    def _start_auth(self, now: float) -> None:
        method = self.lcp.auth_method
        if method is None:
            if self.config.role is Role.SERVER:
                self._fail("no authentication method was agreed", now)
                return
            self._authenticated(Authenticated(self.config.username, None, ZERO_HLAK), now)
            return
        self._set_phase(Phase.AUTHENTICATE)
        if self.config.role is Role.SERVER:
            self.auth = make_authenticator(
                method,
                name=self.config.server_name,
                eap_methods=self.config.eap_methods(),
                eap_tls=self.config.eap_tls_server,
                eap_mode=self.config.eap_mode,
                random_bytes=self._random_bytes,
                peap=self.config.peap_server,
            )
        else:
            self.auth = make_peer(
                method,
                self.config.username,
                self.config.password,
                eap_tls=self.config.eap_tls_peer,
                random_bytes=self._random_bytes,
                peap=self.config.peap_peer,
            )
        self.auth.start(now)

    def _on_auth_event(self, event: MachineEvent, now: float) -> None:
        if isinstance(event, Verification):
            self._emit(event)  # for whoever answers it: the link's owner
        elif isinstance(event, Authenticated):
            if self.phase is Phase.AUTHENTICATE:
                # Its work is done (a repeated Response after Success cannot come over SSTP's reliable
                # transport): a gateway holding many sessions should not keep it (docs/scaling.md).
                self.auth = None
                self._authenticated(event, now)
        else:
            self._emit(event)
            self._fail(f"authentication failed: {event.reason}", now)

    def _authenticated(self, event: Authenticated, now: float) -> None:
        user = self.user = event.user
        self.auth_method = event.method
        self._emit(event)
        self._set_phase(Phase.NETWORK)
        if self.config.role is Role.SERVER:
            if self._network_for_user is None:
                raise ValueError("a server session needs network_for_user")
            network = self._network_for_user(user)
            if isinstance(network, str):
                self._fail(network, now)
                return
            ipcp_config = IpcpConfig(
                role=Role.SERVER,
                local_address=network.local_address,
                peer_address=network.peer_address,
                dns=network.dns,
            )
        else:
            ipcp_config = IpcpConfig(role=Role.CLIENT, request_dns=self.config.request_dns)
        self.ipcp = Ipcp(ipcp_config)
        self.ipcp.up(now)
        self.ipcp.open(now)
        if self.config.ipv6:
            self.ipv6cp = Ipv6cp(random_bytes=self._random_bytes, interface_id=self.config.ipv6_interface_id)
            self.ipv6cp.up(now)
            self.ipv6cp.open(now)

    def _on_ncp_event(self, ncp: Ipcp | Ipv6cp, event: PppEvent, now: float) -> None:
        protocol = Protocol.IPCP if ncp is self.ipcp else Protocol.IPV6CP
        if isinstance(event, LayerUp):
            if isinstance(ncp, Ipcp):
                self._emit(Ipv4Up(ncp.local_address, ncp.peer_address, ncp.dns_servers))
            else:
                self._emit(Ipv6Up(ncp.local_iid, ncp.peer_iid))
        elif isinstance(event, LayerFinished) and self.phase is Phase.NETWORK:
            self._emit(NetworkProtocolDown(protocol, event.reason))
            self._drop_ncp(ncp)
            if self.ipcp is None and self.ipv6cp is None:
                self._fail(f"no network protocol could be negotiated ({event.reason})", now)

    def _on_protocol_rejected(self, protocol: int, now: float) -> None:
        for ncp in (self.ipcp, self.ipv6cp):
            if ncp is not None and ncp.protocol == protocol:
                # RFC 1661 §5.7: a rejected protocol is no longer sent; the other NCP may carry the link.
                self._emit(NetworkProtocolDown(Protocol(protocol), "peer rejected the protocol"))
                ncp.down(now)
                ncp.take_events()
                self._drop_ncp(ncp)
                if self.ipcp is None and self.ipv6cp is None:
                    self._fail("peer rejected every network protocol", now)

    def _drop_ncp(self, ncp: Ipcp | Ipv6cp) -> None:
        if ncp is self.ipcp:
            self.ipcp = None
        else:
            self.ipv6cp = None

    def _lcp_keepalive(self, now: float) -> None:
        interval = self.config.lcp_echo_interval
        if interval is None or self.lcp.state is not fsm.FsmState.OPENED:
            self._echo_due = None
            return
        if self._echoes_outstanding >= self.config.lcp_echo_failures:
            self._fail(f"peer did not answer {self._echoes_outstanding} LCP Echo-Requests", now)
            return
        self._echoes_outstanding += 1
        self.lcp.send_echo_request(now)
        self._echo_due = now + interval

    def _fail(self, reason: str, now: float) -> None:
        self._failure = reason
        self.down_reason = self.down_reason or reason
        self._set_phase(Phase.TERMINATE)
        self.lcp.close(now, reason.encode("utf-8", "replace")[:64])

    def _finish(self, reason: str, *, error: bool) -> None:
        if self.phase is Phase.DEAD:
            return
        self._set_phase(Phase.DEAD)
        self._echo_due = None
        self._emit(SessionDown(reason, error))
