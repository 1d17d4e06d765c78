"""What every authentication machine shares: the machine shape, the question and answer, and the registry.

Two roles, as in RFC 1994's words: the *authenticator* (our server) demands proof, the *peer* (our client)
gives it. Both are sans-I/O machines with the same surface as the rest of :mod:`pysstp.ppp`:
``start(now)``, ``receive(packet, now)``, ``next_deadline()``, ``handle_timer(now)``, ``take_outgoing()`` and
``take_events()``. Each emits exactly one :class:`~pysstp.ppp.events.Authenticated` or
:class:`~pysstp.ppp.events.AuthenticationFailed` (the session passes it on as it is) and then stays
quiet, except for answering a peer's retransmissions the way its RFC asks.

An authenticator never checks a proof itself: it emits a
:class:`~pysstp.ppp.auth.verification.Verification` and goes on when :meth:`Authenticator.answer` gives it
the :class:`~pysstp.ppp.auth.verification.Verdict` (docs/architecture.md, "Authentication").

Methods register their machines (:func:`register_authenticator`, :func:`register_peer`, after aioquic's
``register_congestion_control``); :func:`make_authenticator` and :func:`make_peer` look them up, so this
module imports none of them. Importing :mod:`pysstp.ppp.auth` registers every method.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from pysstp.errors import AuthError
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.verification import Proof, Verdict, Verification
from pysstp.ppp.constants import HLAK_SIZE, MAX_AUTH_TRANSMITS, AuthMethod, Protocol, Timer
from pysstp.ppp.events import Authenticated, AuthenticationFailed, AuthEvent
from pysstp.randomness import RandomBytes

if TYPE_CHECKING:
    from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings
    from pysstp.ppp.auth.peap import PeapPeerSettings, PeapServerSettings

SUCCESS_MESSAGE = "Access granted"
"""Text our authenticators put in Success/Ack messages."""
FAILURE_MESSAGE = "Access denied"
"""Text our authenticators put in Failure/Nak messages; it never says whether the user exists."""

AUTH_WAIT_TIMEOUT = Timer.AUTH_RESTART * MAX_AUTH_TRANSMITS
"""How long a machine that only waits (PAP authenticator, CHAP and EAP peers) waits for the other end."""
ANSWER_TIMEOUT = AUTH_WAIT_TIMEOUT
"""How long an authenticator waits for the answer to its question: as long as a PPP peer waits for us
(RFC 1661 §4.6), after which the peer has given up anyway."""

MachineEvent = AuthEvent | Verification
"""What an authentication machine reports: questions (authenticators only), then its one result."""


def decode_name(raw: bytes) -> str:
    """A user or host name from the wire; bytes that are not UTF-8 cannot name a stored user anyway."""
    return raw.decode("utf-8", "replace")


def encode_text(text: str) -> bytes:
    """Names, passwords and messages go on the wire as UTF-8 (ASCII for every real-world name)."""
    return text.encode("utf-8")


# -- machines ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Retransmission:
    """The one request a machine keeps sending until it is answered."""

    protocol: int
    packet: bytes
    deadline: float
    transmits: int


class AuthMachine:
    """The shape shared by authenticators and peers: outgoing queue, events, one retransmission timer.

    Subclasses implement :meth:`_receive` (which may raise :class:`AuthError` for a malformed packet;
    the packet is then discarded and counted in :attr:`discarded`) and :meth:`_give_up` (what to do
    when the retransmission or wait timer runs out).
    """

    __slots__ = (
        "_events",
        "_finished",
        "_outgoing",
        "_random_bytes",
        "_retransmission",
        "_wait_deadline",
        "discarded",
    )

    protocol: Protocol
    """PPP protocol whose packets this machine takes and sends (for dispatch by the session)."""
    method: AuthMethod
    """The method this machine runs; an EAP machine updates it when EAP settles on another method."""

    def __init__(self, random_bytes: RandomBytes = os.urandom) -> None:
        self._random_bytes = random_bytes
        self._outgoing: list[tuple[int, bytes]] = []
        self._events: list[MachineEvent] = []
        self._retransmission: _Retransmission | None = None
        self._wait_deadline: float | None = None
        self._finished = False
        self.discarded = 0
        """Packets dropped because they were malformed or did not fit the exchange."""

    @property
    def finished(self) -> bool:
        """True once the machine has reported its one result."""
        return self._finished

    def start(self, now: float) -> None:
        """Begin: authenticators send their first request; peers that only react arm their wait timer."""
        self._wait_deadline = now + AUTH_WAIT_TIMEOUT

    def receive(self, packet: bytes, now: float) -> None:
        """Take one packet of :attr:`protocol` (without ``ff 03`` and the protocol field). Never raises."""
        try:
            self._receive(packet, now)
        except AuthError:
            self.discarded += 1

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` wants to be called, or ``None``."""
        if self._retransmission is not None:
            return self._retransmission.deadline
        return None if self._finished else self._wait_deadline

    def handle_timer(self, now: float) -> None:
        """Retransmit a due request, or give up once MAX_AUTH_TRANSMITS copies went unanswered."""
        pending = self._retransmission
        if pending is not None:
            if now < pending.deadline:
                return
            if pending.transmits >= MAX_AUTH_TRANSMITS:
                self._retransmission = None
                self._give_up(now)
                return
            pending.transmits += 1
            pending.deadline = now + Timer.AUTH_RESTART
            self._outgoing.append((pending.protocol, pending.packet))
            return
        if not self._finished and self._wait_deadline is not None and now >= self._wait_deadline:
            self._wait_deadline = None
            self._give_up(now)

    def take_outgoing(self) -> list[tuple[int, bytes]]:
        """Packets to send: (PPP protocol number, packet without ``ff 03`` and protocol field)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def take_events(self) -> list[MachineEvent]:
        """Events since the last call: questions, and at most one result, ever."""
        events, self._events = self._events, []
        return events

    # -- for subclasses ----------------------------------------------------------------------------

    def _receive(self, packet: bytes, now: float) -> None:
        raise NotImplementedError

    def _give_up(self, now: float) -> None:
        raise NotImplementedError

    def _send(self, packet: bytes) -> None:
        """Send once, without retransmission (answers, Success/Failure)."""
        self._outgoing.append((self.protocol, packet))

    def _send_request(self, packet: bytes, now: float) -> None:
        """Send and keep retransmitting every Timer.AUTH_RESTART until :meth:`_stop_retransmission`."""
        self._outgoing.append((self.protocol, packet))
        self._retransmission = _Retransmission(self.protocol, packet, now + Timer.AUTH_RESTART, 1)

    def _stop_retransmission(self) -> None:
        self._retransmission = None

    def _rearm_wait(self, now: float) -> None:
        """Restart the wait timer: the other end is alive and the exchange goes on."""
        self._wait_deadline = now + AUTH_WAIT_TIMEOUT

    def _succeed(self, user: str, hlak: bytes, message: str = "", method: AuthMethod | None = None) -> None:
        if self._finished:
            return
        self._finish()
        self._events.append(Authenticated(user, method or self.method, hlak, message))

    def _fail(
        self, user: str | None, reason: str, error_code: int | None = None, method: AuthMethod | None = None
    ) -> None:
        if self._finished:
            return
        self._finish()
        self._events.append(AuthenticationFailed(user, method or self.method, reason, error_code))

    def _finish(self) -> None:
        self._finished = True
        self._retransmission = None
        self._wait_deadline = None

    def _random_identifier(self) -> int:
        return self._random_bytes(1)[0]


class Authenticator(AuthMachine):
    """Server side: demands the peer's proof, asks whether it holds (a :class:`Verification` event) and
    acts on the :class:`Verdict` given to :meth:`answer`.

    While a question is open the machine sends nothing on its own (no retransmission: the peer answered)
    and ignores the peer's repetitions; :data:`ANSWER_TIMEOUT` bounds the wait.
    """

    __slots__ = ("name", "pending")

    def __init__(self, *, name: str = "pysstp", random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(random_bytes)
        self.name = name
        """Our name, sent in CHAP/EAP challenges."""
        self.pending: Verification | None = None
        """The question waiting for :meth:`answer`, if any."""

    def answer(self, verdict: Verdict, now: float) -> None:
        """The answer to :attr:`pending`; an answer that nobody waits for (late, or after the machine
        finished) is ignored."""
        question = self.pending
        if question is None or self._finished:
            return
        self.pending = None
        self._wait_deadline = None
        self._on_verdict(question, verdict, now)

    def handle_timer(self, now: float) -> None:
        """Give up on a question that stayed unanswered; otherwise as :meth:`AuthMachine.handle_timer`."""
        if self.pending is not None:
            if self._wait_deadline is not None and now >= self._wait_deadline:
                question, self.pending = self.pending, None
                self._fail(
                    question.user,
                    f"the authentication backend did not answer within {ANSWER_TIMEOUT:.0f} s",
                )
            return
        super().handle_timer(now)

    def _ask(self, method: AuthMethod, user: str, proof: Proof, now: float) -> None:
        """Emit the question and wait for :meth:`answer` (the request was answered: no retransmission)."""
        self._stop_retransmission()
        self.pending = Verification(method, user, proof)
        self._wait_deadline = now + ANSWER_TIMEOUT
        self._events.append(self.pending)

    def _on_verdict(self, question: Verification, verdict: Verdict, now: float) -> None:
        raise NotImplementedError

    def _finish_with(self, verdict: Verdict, *, keyed: bool, method: AuthMethod | None = None) -> None:
        """Report the verdict as the machine's result (see :func:`with_keys` for ``keyed``)."""
        verdict = with_keys(verdict, keyed=keyed)
        if verdict.success:
            self._succeed(verdict.user, verdict.hlak or ZERO_HLAK, verdict.message, method)
        else:
            reason = verdict.reason or "refused by the authentication backend"
            self._fail(verdict.user, reason, verdict.error_code, method)


def with_keys(verdict: Verdict, *, keyed: bool) -> Verdict:
    """The verdict, unless it is a success without a 32-byte HLAK for a method that derives keys
    (``keyed``): that is refused rather than bound with zeros (MS-SSTP 3.2.5.2.4). Methods without keys
    (PAP, CHAP-MD5, EAP-MD5) bind with zeros whatever the backend sent."""
    if not verdict.success:
        return verdict
    if len(verdict.hlak) == HLAK_SIZE:
        return verdict
    if keyed:
        reason = (
            f"the authentication backend accepted user {verdict.user!r} without the keys for the crypto "
            "binding"
        )
        return Verdict(False, verdict.user, reason=reason)
    return replace(verdict, hlak=ZERO_HLAK)


class AuthPeer(AuthMachine):
    """Client side: proves the user's identity to the server with a user name and a password."""

    __slots__ = ("password", "username")

    def __init__(self, username: str, password: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(random_bytes)
        self.username = username
        self.password = password


# -- registry -------------------------------------------------------------------------------------

EAP_METHODS = (AuthMethod.EAP_MSCHAP_V2, AuthMethod.EAP_MD5)
"""Methods that run inside EAP with a password, in our default order of preference."""
ALL_EAP_METHODS = frozenset({*EAP_METHODS, AuthMethod.EAP_TLS, AuthMethod.PEAP})
"""Every method that runs inside EAP; EAP-TLS and PEAP only where certificates are configured."""

EapMode = Literal["local", "pass-through"]
"""``local``: the EAP methods run here and ask for their inner proofs; ``pass-through``: every EAP
Response after Identity goes to the backend as it is, which runs EAP itself (RFC 3579)."""


@dataclass(frozen=True)
class AuthenticatorOptions:
    """What :func:`make_authenticator` hands a registered factory."""

    method: AuthMethod
    """The method LCP agreed on."""
    name: str = "pysstp"
    eap_methods: tuple[AuthMethod, ...] = EAP_METHODS
    """For EAP: ``method`` first, then what a peer's Legacy-Nak may switch to."""
    eap_tls: EapTlsServerSettings | None = None
    eap_mode: EapMode = "local"
    random_bytes: RandomBytes = os.urandom
    peap: PeapServerSettings | None = None


@dataclass(frozen=True)
class PeerOptions:
    """What :func:`make_peer` hands a registered factory."""

    method: AuthMethod
    username: str
    password: str
    eap_tls: EapTlsPeerSettings | None = None
    random_bytes: RandomBytes = os.urandom
    peap: PeapPeerSettings | None = None


AuthenticatorFactory = Callable[[AuthenticatorOptions], Authenticator]
PeerFactory = Callable[[PeerOptions], AuthPeer]

_AUTHENTICATORS: dict[AuthMethod, AuthenticatorFactory] = {}
_PEERS: dict[AuthMethod, PeerFactory] = {}


def register_authenticator(method: AuthMethod, factory: AuthenticatorFactory) -> None:
    """Make ``factory`` build the server-side machine for ``method`` (each method module calls this)."""
    _AUTHENTICATORS[method] = factory


def register_peer(method: AuthMethod, factory: PeerFactory) -> None:
    """Make ``factory`` build the client-side machine for ``method``."""
    _PEERS[method] = factory


def make_authenticator(
    method: AuthMethod,
    *,
    name: str = "pysstp",
    eap_methods: tuple[AuthMethod, ...] = EAP_METHODS,
    eap_tls: EapTlsServerSettings | None = None,
    eap_mode: EapMode = "local",
    random_bytes: RandomBytes = os.urandom,
    peap: PeapServerSettings | None = None,
) -> Authenticator:
    """The server-side machine for ``method`` (the method LCP agreed on).

    For an EAP method, ``method`` is proposed first and the rest of ``eap_methods`` are what a peer's
    Legacy-Nak may switch to. ``eap_tls`` and ``peap`` hold the certificates EAP-TLS and PEAP need.
    """
    factory = _AUTHENTICATORS.get(method)
    if factory is None:
        raise ValueError(f"no authenticator for {method!r}")
    order = (method, *(m for m in eap_methods if m is not method))
    return factory(AuthenticatorOptions(method, name, order, eap_tls, eap_mode, random_bytes, peap))


def make_peer(
    method: AuthMethod,
    username: str,
    password: str,
    *,
    eap_tls: EapTlsPeerSettings | None = None,
    random_bytes: RandomBytes = os.urandom,
    peap: PeapPeerSettings | None = None,
) -> AuthPeer:
    """The client-side machine for ``method``; an EAP peer accepts every EAP method we support, EAP-TLS
    only when ``eap_tls`` gives it a certificate, PEAP only when ``peap`` gives it the CAs."""
    factory = _PEERS.get(method)
    if factory is None:
        raise ValueError(f"no peer for {method!r}")
    return factory(PeerOptions(method, username, password, eap_tls, random_bytes, peap))
