"""What every authentication machine shares: credentials, events, the machine shape and the factories.

Two roles, as in RFC 1994's words: the *authenticator* (our server) demands proof, the *peer* (our client)
gives it. Both are sans-I/O machines with the same surface as the rest of :mod:`pysstp.ppp`:
``start(now)``, ``receive(packet, now)``, ``next_deadline()``, ``handle_timer(now)``, ``take_outgoing()`` and
``take_events()``. Each emits exactly one :class:`~pysstp.ppp.events.Authenticated` or
:class:`~pysstp.ppp.events.AuthenticationFailed` (the session passes it on as it is) and then stays
quiet, except for answering a peer's retransmissions the way its RFC asks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Protocol as TypingProtocol

from pysstp.errors import AuthError
from pysstp.ppp.auth.mschapv2 import nt_password_hash
from pysstp.ppp.constants import MAX_AUTH_TRANSMITS, AuthMethod, Protocol, Timer
from pysstp.ppp.events import Authenticated, AuthenticationFailed, AuthEvent
from pysstp.randomness import RandomBytes

if TYPE_CHECKING:
    from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings

SUCCESS_MESSAGE = "Access granted"
"""Text our authenticators put in Success/Ack messages."""
FAILURE_MESSAGE = "Access denied"
"""Text our authenticators put in Failure/Nak messages; it never says whether the user exists."""

AUTH_WAIT_TIMEOUT = Timer.AUTH_RESTART * MAX_AUTH_TRANSMITS
"""How long a machine that only waits (PAP authenticator, CHAP and EAP peers) waits for the other end."""


# -- credentials ------------------------------------------------------------------------------------


class CredentialStore(TypingProtocol):
    """Where an authenticator looks users up.

    ``nt_hash`` is what a server normally keeps (MD4 of the UTF-16LE password): it suffices for PAP,
    MS-CHAPv2 and EAP-MSCHAPv2. ``password`` returns a plaintext only where the administrator keeps one;
    CHAP-MD5 and EAP-MD5 cannot work without it.
    """

    def nt_hash(self, user: str) -> bytes | None:
        """The user's NT password hash, or ``None`` for an unknown user."""
        ...

    def password(self, user: str) -> str | None:
        """The user's plaintext password, or ``None`` (unknown user, or only a hash is stored)."""
        ...


class StaticCredentials:
    """An in-memory :class:`CredentialStore` built from ``{user: password}`` (tests and the demo)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._passwords = dict(users)
        self._hashes = {user: nt_password_hash(password) for user, password in users.items()}

    def nt_hash(self, user: str) -> bytes | None:
        """The NT hash computed when the store was built."""
        return self._hashes.get(user)

    def password(self, user: str) -> str | None:
        """The plaintext the store was built with."""
        return self._passwords.get(user)


def name_candidates(name: str) -> tuple[str, ...]:
    """The names a sent user name may be stored under, in order: as sent, then the part after the last
    backslash of a ``DOMAIN\\user`` name."""
    if "\\" in name:
        return (name, name.rpartition("\\")[2])
    return (name,)


def lookup_user(credentials: CredentialStore, name: str) -> str | None:
    """The name under which ``credentials`` knows the user who sent ``name``, or ``None``.

    The name as sent wins; if it is unknown and carries a ``DOMAIN\\`` prefix, the part after the last
    backslash is tried (Windows sends ``DOMAIN\\user`` when the user typed it so).
    """
    for candidate in name_candidates(name):
        if credentials.nt_hash(candidate) is not None or credentials.password(candidate) is not None:
            return candidate
    return None


def stored_nt_hash(credentials: CredentialStore, user: str) -> bytes | None:
    """The NT hash of a known user; derived from the plaintext if that is all the store keeps."""
    stored = credentials.nt_hash(user)
    if stored is None and (password := credentials.password(user)) is not None:
        stored = nt_password_hash(password)
    return stored


def decode_name(raw: bytes) -> str:
    """A user or host name from the wire; bytes that are not UTF-8 cannot name a stored user anyway."""
    return raw.decode("utf-8", "replace")


def encode_text(text: str) -> bytes:
    """Names, passwords and messages go on the wire as UTF-8 (ASCII for every real-world name)."""
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Verdict:
    """An authenticator's decision on one answer, and the text of the Success/Failure packet to send.

    ``user`` is the matched name on success, else the name as sent; ``reason`` and ``error_code`` are
    for :class:`~pysstp.ppp.events.AuthenticationFailed`.
    """

    success: bool
    user: str
    message: str
    hlak: bytes = b""
    reason: str = ""
    error_code: int | None = None


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

    protocol: Protocol
    """PPP protocol whose packets this machine takes and sends (for dispatch by the session)."""
    method: AuthMethod
    """The method this machine runs; an EAP machine updates it when EAP settles on another method."""

    def __init__(self, random_bytes: RandomBytes = os.urandom) -> None:
        self._random_bytes = random_bytes
        self._outgoing: list[tuple[int, bytes]] = []
        self._events: list[AuthEvent] = []
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

    def take_events(self) -> list[AuthEvent]:
        """Events since the last call (at most one result, ever)."""
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
    """Server side: demands and checks the peer's credentials against a :class:`CredentialStore`."""

    def __init__(
        self, credentials: CredentialStore, *, name: str = "pysstp", random_bytes: RandomBytes = os.urandom
    ) -> None:
        super().__init__(random_bytes)
        self.credentials = credentials
        self.name = name
        """Our name, sent in CHAP/EAP challenges."""


class AuthPeer(AuthMachine):
    """Client side: proves the user's identity to the server with a user name and a password."""

    def __init__(self, username: str, password: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(random_bytes)
        self.username = username
        self.password = password


# -- factories --------------------------------------------------------------------------------------

EAP_METHODS = (AuthMethod.EAP_MSCHAP_V2, AuthMethod.EAP_MD5)
"""Methods that run inside EAP with a password, in our default order of preference."""
ALL_EAP_METHODS = frozenset({*EAP_METHODS, AuthMethod.EAP_TLS})
"""Every method that runs inside EAP; EAP-TLS only where certificates are configured."""


def make_authenticator(
    method: AuthMethod,
    credentials: CredentialStore,
    *,
    name: str = "pysstp",
    eap_methods: tuple[AuthMethod, ...] = EAP_METHODS,
    eap_tls: EapTlsServerSettings | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> Authenticator:
    """The server-side machine for ``method`` (the method LCP agreed on).

    For an EAP method, ``method`` is proposed first and the rest of ``eap_methods`` are what a peer's
    Legacy-Nak may switch to. ``eap_tls`` holds the certificates EAP-TLS needs.
    """
    # Imported here because every method module builds on this one.
    from pysstp.ppp.auth.chap import ChapMd5Authenticator, MsChapV2Authenticator
    from pysstp.ppp.auth.eap import EapAuthenticator
    from pysstp.ppp.auth.pap import PapAuthenticator

    match method:
        case AuthMethod.PAP:
            return PapAuthenticator(credentials, name=name, random_bytes=random_bytes)
        case AuthMethod.CHAP_MD5:
            return ChapMd5Authenticator(credentials, name=name, random_bytes=random_bytes)
        case AuthMethod.MSCHAP_V2:
            return MsChapV2Authenticator(credentials, name=name, random_bytes=random_bytes)
        case AuthMethod.EAP_MSCHAP_V2 | AuthMethod.EAP_MD5 | AuthMethod.EAP_TLS:
            order = (method, *(m for m in eap_methods if m is not method))
            return EapAuthenticator(
                credentials, name=name, eap_methods=order, eap_tls=eap_tls, random_bytes=random_bytes
            )
    raise ValueError(f"no authenticator for {method!r}")


def make_peer(
    method: AuthMethod,
    username: str,
    password: str,
    *,
    eap_tls: EapTlsPeerSettings | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> AuthPeer:
    """The client-side machine for ``method``; an EAP peer accepts every EAP method we support, EAP-TLS
    only when ``eap_tls`` gives it a certificate."""
    from pysstp.ppp.auth.chap import ChapMd5Peer, MsChapV2Peer
    from pysstp.ppp.auth.eap import EapPeer
    from pysstp.ppp.auth.pap import PapPeer

    match method:
        case AuthMethod.PAP:
            return PapPeer(username, password, random_bytes=random_bytes)
        case AuthMethod.CHAP_MD5:
            return ChapMd5Peer(username, password, random_bytes=random_bytes)
        case AuthMethod.MSCHAP_V2:
            return MsChapV2Peer(username, password, random_bytes=random_bytes)
        case AuthMethod.EAP_MSCHAP_V2 | AuthMethod.EAP_MD5 | AuthMethod.EAP_TLS:
            methods = (*EAP_METHODS, AuthMethod.EAP_TLS) if eap_tls is not None else EAP_METHODS
            order = (method, *(m for m in methods if m is not method))
            return EapPeer(username, password, eap_methods=order, eap_tls=eap_tls, random_bytes=random_bytes)
    raise ValueError(f"no peer for {method!r}")
