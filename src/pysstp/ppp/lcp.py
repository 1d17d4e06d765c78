"""LCP (RFC 1661, RFC 1570): MRU, Authentication-Protocol and Magic-Number on top of :class:`OptionFsm`.

Policy, chosen to work with every SSTP peer of docs/interop.md:

* We ask for MRU, Authentication-Protocol (server only) and Magic-Number. A peer that rejects MRU or
  Magic-Number (SoftEther, Open-SSTP-Client reject the magic) gets requests without them; a rejected magic
  means magic 0 in our Echo packets.
* From the peer we accept MRU inside ``[min_peer_mru, max_peer_mru]`` (anything else is Nak'ed to the
  nearest bound; Windows asks 4091 and gets 1500), any non-zero Magic-Number that is not ours, and on the
  client an Authentication-Protocol we are willing to run. Everything else is rejected verbatim: ACCM,
  Quality-Protocol, PFC and ACFC (SSTP peers require ``ff 03`` + 2-byte protocol), Callback, multilink
  options and unknown options.
* Server: offers ``auth_methods`` in order, follows a client's Nak to another allowed method, moves on to
  the next method when the Nak names one it does not allow, and fails when none is left or when the client
  rejects authentication altogether.
* Client: Acks an offered method it accepts (after one Nak naming its first preference when the offer is
  another one); otherwise Naks with its first preference not suggested yet
  (or its first preference again when all were: SoftEther ignores suggestions and walks its own list), and
  fails naming the server's offers after ``max_failure`` unacceptable ones.
* Echo-Request is answered with our magic (0 if none) in Req-Sent, Ack-Rcvd, Ack-Sent and Opened (see the
  RXR row of :data:`pysstp.ppp.fsm.TRANSITIONS`); Discard-Request, Identification and Time-Remaining are
  accepted silently (the latter two are reported as events for logging).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Unpack

from pysstp.errors import PppError
from pysstp.ppp.constants import (
    DEFAULT_MRU,
    MAGIC_NUMBER_SIZE,
    MAX_MRU,
    MIN_MRU,
    PROTOCOL_FIELD_SIZE,
    AuthMethod,
    Code,
    LcpOption,
    Protocol,
    Role,
)
from pysstp.ppp.events import (
    EchoReplyReceived,
    IdentificationReceived,
    ProtocolRejected,
    TimeRemainingReceived,
)
from pysstp.ppp.fsm import (
    AutomatonEvent,
    FsmLimits,
    FsmState,
    NegotiationFailed,
    OptionFsm,
    configure_reply,
    printable_text,
    random_nonzero,
)
from pysstp.ppp.packet import ControlPacket, Option
from pysstp.randomness import RandomBytes

_MRU_SIZE = 2
_SECONDS_SIZE = 4


@dataclass(frozen=True, slots=True)
class LcpConfig:
    """What LCP asks for and accepts.

    ``role`` may be given as :class:`Role` or its value ("client"/"server"). ``mru`` is what we ask the peer
    to send us at most; ``min_peer_mru``/``max_peer_mru`` bound the MRU we accept from the peer (raise
    ``max_peer_mru`` up to ``MAX_MRU`` only for pysstp-to-pysstp links). ``auth_methods``: a server offers
    them in this order, a client accepts them in this order of preference.
    """

    role: Role | Literal["client", "server"]
    mru: int = DEFAULT_MRU
    min_peer_mru: int = MIN_MRU
    max_peer_mru: int = DEFAULT_MRU
    auth_methods: tuple[AuthMethod, ...] = (AuthMethod.MSCHAP_V2,)
    use_magic: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if not MIN_MRU <= self.mru <= MAX_MRU:
            raise ValueError(f"MRU {self.mru} is outside {MIN_MRU}..{MAX_MRU}")
        if not MIN_MRU <= self.min_peer_mru <= self.max_peer_mru <= MAX_MRU:
            raise ValueError(f"peer MRU bounds {self.min_peer_mru}..{self.max_peer_mru} are invalid")

    @property
    def is_server(self) -> bool:
        """True when we authenticate the peer."""
        return self.role is Role.SERVER


def _uint(option: Option, size: int) -> int | None:
    """The option's value as an unsigned integer, or None when it has the wrong length."""
    return int.from_bytes(option.value, "big") if len(option.value) == size else None


def _method_names(methods: tuple[AuthMethod, ...]) -> str:
    return ", ".join(method.value for method in methods) or "none"


def _describe_auth(value: bytes) -> str:
    method = AuthMethod.from_lcp_value(value)
    return method.value if method is not None else f"unknown ({value.hex(' ')})"


class Lcp(OptionFsm):
    """The Link Control Protocol for one call.

    Results, valid after :class:`~pysstp.ppp.fsm.LayerUp`: :attr:`auth_method` (how the server
    authenticates the client, None for no authentication), :attr:`peer_mru` (the largest packet we may
    send), :attr:`our_mru` (the largest the peer will send), :attr:`magic` and :attr:`peer_magic` (0 when
    not negotiated).
    """

    __slots__ = (
        "_ask_magic",
        "_ask_mru",
        "_auth_insisted",
        "_auth_offer",
        "_auth_refused",
        "_auth_told",
        "_auth_tried",
        "_magic_wish",
        "_mru_wish",
        "_random_bytes",
        "auth_method",
        "config",
        "magic",
        "our_mru",
        "peer_magic",
    )

    auth_method: AuthMethod | None
    our_mru: int
    magic: int
    peer_magic: int
    _ask_mru: bool
    _mru_wish: int
    _ask_magic: bool
    _auth_offer: AuthMethod | None
    # Tuples, not lists: the empty tuple is shared, so an idle call keeps none of its own.
    _auth_tried: tuple[AuthMethod, ...]
    _auth_refused: tuple[bytes, ...]
    _auth_told: tuple[AuthMethod, ...]

    def __init__(
        self, config: LcpConfig, *, random_bytes: RandomBytes = os.urandom, **limits: Unpack[FsmLimits]
    ) -> None:
        super().__init__(Protocol.LCP, **limits)
        self.config = config
        self._random_bytes = random_bytes
        self._magic_wish = self._new_magic()
        self.reset_negotiation()

    # ------------------------------------------------------------------------------------------ public

    def send_echo_request(self, now: float, data: bytes = b"") -> int | None:
        """Send an Echo-Request (Opened only); returns its identifier, or None when not Opened."""
        if self.state != FsmState.OPENED:
            return None
        identifier = self._new_identifier()
        self._send(Code.ECHO_REQUEST, identifier, self._magic_field() + data)
        return identifier

    def protocol_reject(self, protocol: int, info: bytes) -> bool:
        """Protocol-Reject a frame of ``protocol`` whose information field is ``info`` (Opened only).

        The packet is truncated to the peer's MRU. Returns False (and sends nothing) when not Opened.
        """
        if self.state != FsmState.OPENED:
            return False
        rejected = protocol.to_bytes(PROTOCOL_FIELD_SIZE) + info
        self._send(Code.PROTOCOL_REJECT, self._new_identifier(), rejected)
        return True

    # ------------------------------------------------------------------------------------------- hooks

    def reset_negotiation(self) -> None:
        """Ask again for everything configured; forget what the previous negotiation agreed."""
        self._ask_mru = True
        self._mru_wish = self.config.mru
        self._ask_magic = self.config.use_magic
        self._auth_tried = ()
        self._auth_insisted = False
        offers = self._offers
        self._auth_offer = offers[0] if self.config.is_server and offers else None
        self._auth_refused = ()
        self._auth_told = ()
        self.auth_method = None
        self.peer_mru = self.our_mru = DEFAULT_MRU
        self.magic = self.peer_magic = 0

    def request_options(self) -> list[Option]:
        """MRU, then Authentication-Protocol (server), then Magic-Number."""
        options = []
        if self._ask_mru:
            options.append(Option(LcpOption.MRU, self._mru_wish.to_bytes(_MRU_SIZE)))
        if self._auth_offer is not None:
            options.append(Option(LcpOption.AUTH_PROTOCOL, self._auth_offer.lcp_value))
        if self._ask_magic:
            options.append(Option(LcpOption.MAGIC_NUMBER, self._magic_wish.to_bytes(MAGIC_NUMBER_SIZE)))
        return options

    def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        """Accept MRU in bounds, a usable magic and (client) an acceptable auth method; reject the rest."""
        rejected: list[Option] = []
        naked: list[Option] = []
        for option in options:
            if option.type == LcpOption.MRU and (mru := _uint(option, _MRU_SIZE)) is not None:
                bounded = min(max(mru, self.config.min_peer_mru), self.config.max_peer_mru)
                if bounded != mru:
                    naked.append(Option(LcpOption.MRU, bounded.to_bytes(_MRU_SIZE)))
            elif (
                option.type == LcpOption.MAGIC_NUMBER
                and (magic := _uint(option, MAGIC_NUMBER_SIZE)) is not None
            ):
                if magic == 0 or (self._ask_magic and magic == self._magic_wish):
                    # Zero is invalid; our own number means the link may be looped back (RFC 1661 §6.4).
                    fresh = self._new_magic(avoid={magic, self._magic_wish})
                    naked.append(Option(LcpOption.MAGIC_NUMBER, fresh.to_bytes(MAGIC_NUMBER_SIZE)))
            elif option.type == LcpOption.AUTH_PROTOCOL and not self.config.is_server:
                accepted = self._accepted_method(option.value)
                # An acceptable method that is not our favourite gets one Nak naming the favourite:
                # SoftEther offers EAP first but runs MS-CHAPv2 when asked, which is what we prefer.
                if accepted is None or (accepted is not self._offers[0] and not self._auth_told):
                    suggestion = self._suggest_method(option.value)
                    naked.append(Option(LcpOption.AUTH_PROTOCOL, suggestion.lcp_value))
            else:
                rejected.append(option)
        return configure_reply(options, rejected, naked)

    def apply_peer_options(self, options: list[Option]) -> None:
        """Record the peer's MRU and magic, and (client) the authentication method we agreed to run."""
        for option in options:
            if option.type == LcpOption.MRU:
                self.peer_mru = int.from_bytes(option.value)
            elif option.type == LcpOption.MAGIC_NUMBER:
                self.peer_magic = int.from_bytes(option.value)
            elif option.type == LcpOption.AUTH_PROTOCOL:
                self.auth_method = self._accepted_method(option.value)

    def on_ack(self, options: list[Option]) -> None:
        """Our MRU, offer and magic are now agreed."""
        self.our_mru = self._mru_wish if self._ask_mru else DEFAULT_MRU
        self.magic = self._magic_wish if self._ask_magic else 0
        if self.config.is_server:
            self.auth_method = self._auth_offer

    def on_nak(self, options: list[Option]) -> None:
        """Take the peer's MRU, pick a new magic, follow (server) the client's auth suggestion."""
        for option in options:
            if option.type == LcpOption.MRU and self._ask_mru and (mru := _uint(option, _MRU_SIZE)):
                self._mru_wish = min(max(mru, MIN_MRU), MAX_MRU)
            elif option.type == LcpOption.MAGIC_NUMBER and self._ask_magic:
                self._magic_wish = self._new_magic(avoid={self._magic_wish})
            elif option.type == LcpOption.AUTH_PROTOCOL and self._auth_offer is not None:
                self._follow_auth_nak(option.value)

    def on_reject(self, options: list[Option]) -> None:
        """Stop asking for a rejected MRU or magic; a server cannot do without authentication."""
        for option in options:
            if option.type == LcpOption.MRU:
                self._ask_mru = False
            elif option.type == LcpOption.MAGIC_NUMBER:
                self._ask_magic = False
            elif option.type == LcpOption.AUTH_PROTOCOL:
                raise NegotiationFailed(self._auth_exhausted())

    def handle_extra_code(self, packet: ControlPacket, now: float) -> bool:
        """Echo, Discard, Identification, Time-Remaining and Protocol-Reject (RFC 1661 §5.7-5.9, RFC 1570)."""
        code = packet.code
        if code in (Code.ECHO_REQUEST, Code.ECHO_REPLY, Code.DISCARD_REQUEST, Code.IDENTIFICATION):
            magic = self._peer_magic_field(packet, MAGIC_NUMBER_SIZE)
            if self.magic and magic == self.magic:
                self.discarded += 1  # our own packet came back: the link is looped
            elif code == Code.ECHO_REQUEST:
                self._dispatch(AutomatonEvent.RXR, now, packet)
            elif code == Code.ECHO_REPLY and self.state == FsmState.OPENED:
                self._emit(EchoReplyReceived(packet.identifier, packet.data[MAGIC_NUMBER_SIZE:]))
            elif code == Code.IDENTIFICATION:
                self._emit(IdentificationReceived(printable_text(packet.data[MAGIC_NUMBER_SIZE:])))
            return True
        if code == Code.TIME_REMAINING:
            text_start = MAGIC_NUMBER_SIZE + _SECONDS_SIZE
            self._peer_magic_field(packet, text_start)
            seconds = int.from_bytes(packet.data[MAGIC_NUMBER_SIZE:text_start])
            self._emit(TimeRemainingReceived(seconds, printable_text(packet.data[text_start:])))
            return True
        if code == Code.PROTOCOL_REJECT:
            if len(packet.data) < PROTOCOL_FIELD_SIZE:
                raise PppError("Protocol-Reject without the rejected protocol")
            if self.state != FsmState.OPENED:
                self.discarded += 1  # RFC 1661 §5.7: only meaningful in Opened
                return True
            rejected = int.from_bytes(packet.data[:PROTOCOL_FIELD_SIZE])
            if rejected == Protocol.LCP:
                self.protocol_rejected(now)
            else:
                self._emit(ProtocolRejected(rejected))
                self._dispatch(AutomatonEvent.RXJ_PLUS, now, packet)
            return True
        return False

    def send_echo_reply(self, packet: ControlPacket) -> None:
        """Echo-Reply: our magic, then the request's data unchanged."""
        self._send(Code.ECHO_REPLY, packet.identifier, self._magic_field() + packet.data[MAGIC_NUMBER_SIZE:])

    # --------------------------------------------------------------------------------------- internals

    @property
    def _offers(self) -> tuple[AuthMethod, ...]:
        """The configured methods with distinct LCP values (the EAP methods share one; EAP itself picks
        among them); worked out when negotiating rather than kept by every call."""
        first: dict[bytes, AuthMethod] = {}
        for method in self.config.auth_methods:
            first.setdefault(method.lcp_value, method)
        return tuple(first.values())

    def _new_magic(self, avoid: frozenset[int] | set[int] = frozenset()) -> int:
        """A non-zero random magic number outside ``avoid``."""
        excluded = [magic.to_bytes(MAGIC_NUMBER_SIZE) for magic in avoid]
        return int.from_bytes(random_nonzero(self._random_bytes, MAGIC_NUMBER_SIZE, excluded))

    def _magic_field(self) -> bytes:
        return self.magic.to_bytes(MAGIC_NUMBER_SIZE)

    @staticmethod
    def _peer_magic_field(packet: ControlPacket, minimum: int) -> int:
        if len(packet.data) < minimum:
            raise PppError(f"LCP code {packet.code} packet of {len(packet.data)} data bytes is too short")
        return int.from_bytes(packet.data[:MAGIC_NUMBER_SIZE])

    def _accepted_method(self, value: bytes) -> AuthMethod | None:
        """Our first configured method that the Authentication-Protocol value names."""
        return next((m for m in self.config.auth_methods if m.lcp_value == value), None)

    def _suggest_method(self, offered: bytes) -> AuthMethod:
        """Client: the method to Nak an unacceptable offer with.

        Our first preference not suggested yet, else our first preference again: SoftEther walks through
        its own list whatever the Nak says (EAP, MS-CHAPv2, then PAP), so a PAP-only client must keep
        suggesting PAP. After ``max_failure`` unacceptable offers we give up with a reason naming them.
        """
        if not self._offers or len(self._auth_refused) >= self.max_failure:
            offers = ", ".join(
                dict.fromkeys(_describe_auth(value) for value in [*self._auth_refused, offered])
            )
            raise NegotiationFailed(
                f"server offers only {offers} authentication; we accept only {_method_names(self._offers)}"
            )
        self._auth_refused += (offered,)
        told = {method.lcp_value for method in self._auth_told}
        suggestion = next((m for m in self._offers if m.lcp_value not in told), self._offers[0])
        self._auth_told += (suggestion,)
        return suggestion

    def _follow_auth_nak(self, suggested_value: bytes) -> None:
        """Server: offer the client's suggestion if we allow it, else our next method not yet offered."""
        assert self._auth_offer is not None  # only called while we offer a method
        self._auth_tried += (self._auth_offer,)
        tried = {method.lcp_value for method in self._auth_tried}
        candidates = [method for method in self._offers if method.lcp_value not in tried]
        suggested = [method for method in candidates if method.lcp_value == suggested_value]
        if not candidates:
            # A client may Nak a method it would accept, to ask for its favourite first; offering our
            # first method once more lets such a client settle for it. A second refusal is final.
            if self._auth_insisted:
                raise NegotiationFailed(self._auth_exhausted())
            self._auth_insisted = True
            candidates = [self._offers[0]]
        self._auth_offer = (suggested or candidates)[0]

    def _auth_exhausted(self) -> str:
        return f"peer rejected every authentication method we offer ({_method_names(self._offers)})"
