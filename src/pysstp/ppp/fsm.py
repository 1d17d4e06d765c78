"""The option negotiation automaton of RFC 1661 §4, shared by LCP, IPCP and IPv6CP.

:data:`TRANSITIONS` is the state transition table of RFC 1661 §4.1 written the way the RFC prints it, so the
two can be compared cell by cell; the only deliberate difference is documented next to it. :class:`OptionFsm`
runs that table: it turns packets, timeouts and administrative commands into automaton events, executes the
actions (sending Configure-Requests, Acks, Terminate-Requests...) and reports This-Layer-Up/Down/Started/
Finished as :class:`LayerUp`, :class:`LayerDown`, :class:`LayerStarted` and :class:`LayerFinished` events.
What is negotiated is decided by subclasses through a handful of hooks (see :class:`OptionFsm`).

Sans-I/O: the caller passes ``now`` into every method, drains :meth:`OptionFsm.take_outgoing` and
:meth:`OptionFsm.take_events`, and calls :meth:`OptionFsm.handle_timer` at :meth:`OptionFsm.next_deadline`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypedDict

from pysstp.errors import PppError, PysstpError
from pysstp.ppp.constants import (
    CONTROL_HEADER_SIZE,
    DEFAULT_MRU,
    MAX_CONFIGURE,
    MAX_FAILURE,
    MAX_TERMINATE,
    NCP_CODES,
    Code,
    Protocol,
    Timer,
)
from pysstp.ppp.events import (
    CodeRejected,
    LayerDown,
    LayerFinished,
    LayerStarted,
    LayerUp,
    PppEvent,
)
from pysstp.ppp.packet import ControlPacket, Option, decode_options, encode_options
from pysstp.randomness import RandomBytes

# ------------------------------------------------------------------------------------- the RFC 1661 table


class FsmState(enum.IntEnum):
    """Automaton states, numbered as in RFC 1661 §4.1."""

    INITIAL = 0
    STARTING = 1
    CLOSED = 2
    STOPPED = 3
    CLOSING = 4
    STOPPING = 5
    REQ_SENT = 6
    ACK_RCVD = 7
    ACK_SENT = 8
    OPENED = 9


class AutomatonEvent(enum.Enum):
    """Automaton events (RFC 1661 §4.3)."""

    UP = "Up"
    DOWN = "Down"
    OPEN = "Open"
    CLOSE = "Close"
    TO_PLUS = "TO+"
    TO_MINUS = "TO-"
    RCR_PLUS = "RCR+"
    RCR_MINUS = "RCR-"
    RCA = "RCA"
    RCN = "RCN"
    RTR = "RTR"
    RTA = "RTA"
    RUC = "RUC"
    RXJ_PLUS = "RXJ+"
    RXJ_MINUS = "RXJ-"
    RXR = "RXR"


class Action(enum.Enum):
    """Automaton actions (RFC 1661 §4.4)."""

    TLU = "tlu"
    TLD = "tld"
    TLS = "tls"
    TLF = "tlf"
    IRC = "irc"
    ZRC = "zrc"
    SCR = "scr"
    SCA = "sca"
    SCN = "scn"
    STR = "str"
    STA = "sta"
    SCJ = "scj"
    SER = "ser"


_E = AutomatonEvent
_RFC1661_TABLE: dict[AutomatonEvent, tuple[str, ...]] = {
    # State:   Initial   Starting     Closed   Stopped          Closing  Stopping
    #          Req-Sent     Ack-Rcvd     Ack-Sent     Opened
    _E.UP: ("2", "irc,scr/6", "-", "-", "-", "-",
            "-", "-", "-", "-"),
    _E.DOWN: ("-", "-", "0", "tls/1", "0", "1",
              "1", "1", "1", "tld/1"),
    _E.OPEN: ("tls/1", "1", "irc,scr/6", "3", "5", "5",
              "6", "7", "8", "9"),
    _E.CLOSE: ("0", "tlf/0", "2", "2", "4", "4",
               "irc,str/4", "irc,str/4", "irc,str/4", "tld,irc,str/4"),
    _E.TO_PLUS: ("-", "-", "-", "-", "str/4", "str/5",
                 "scr/6", "scr/6", "scr/8", "-"),
    _E.TO_MINUS: ("-", "-", "-", "-", "tlf/2", "tlf/3",
                  "tlf/3", "tlf/3", "tlf/3", "-"),
    _E.RCR_PLUS: ("-", "-", "sta/2", "irc,scr,sca/8", "4", "5",
                  "sca/8", "sca,tlu/9", "sca/8", "tld,scr,sca/8"),
    _E.RCR_MINUS: ("-", "-", "sta/2", "irc,scr,scn/6", "4", "5",
                   "scn/6", "scn/7", "scn/6", "tld,scr,scn/6"),
    _E.RCA: ("-", "-", "sta/2", "sta/3", "4", "5",
             "irc/7", "scr/6", "irc,tlu/9", "tld,scr/6"),
    _E.RCN: ("-", "-", "sta/2", "sta/3", "4", "5",
             "irc,scr/6", "scr/6", "irc,scr/8", "tld,scr/6"),
    _E.RTR: ("-", "-", "sta/2", "sta/3", "sta/4", "sta/5",
             "sta/6", "sta/6", "sta/6", "tld,zrc,sta/5"),
    _E.RTA: ("-", "-", "2", "3", "tlf/2", "tlf/3",
             "6", "6", "8", "tld,scr/6"),
    _E.RUC: ("-", "-", "scj/2", "scj/3", "scj/4", "scj/5",
             "scj/6", "scj/7", "scj/8", "scj/9"),
    _E.RXJ_PLUS: ("-", "-", "2", "3", "4", "5",
                  "6", "6", "8", "9"),
    _E.RXJ_MINUS: ("-", "-", "tlf/2", "tlf/3", "tlf/2", "tlf/3",
                   "tlf/3", "tlf/3", "tlf/3", "tld,irc,str/5"),
    # Deviation: the RFC answers Echo-Request only in Opened ("6", "7", "8" in the negotiating states).
    # SoftEther sends an Echo-Request together with its first Configure-Request (docs/interop.md, quirks);
    # answering while negotiating costs nothing and shows we are alive.
    _E.RXR: ("-", "-", "2", "3", "4", "5",
             "ser/6", "ser/7", "ser/8", "ser/9"),
}  # fmt: skip
"""RFC 1661 §4.1, cell by cell ("actions/new state", "-" = illegal event). The footnotes are not needed:
[p] and [x] change nothing here, and the [r] restart option (Down+Up on Open) is not implemented."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One cell of the table: the actions to run in order, then the new state."""

    actions: tuple[Action, ...]
    state: FsmState


def _parse_cell(cell: str) -> Transition | None:
    if cell == "-":
        return None
    actions, _, state = cell.rpartition("/")
    return Transition(tuple(Action(a) for a in actions.split(",") if a), FsmState(int(state)))


TRANSITIONS: dict[tuple[FsmState, AutomatonEvent], Transition] = {
    (FsmState(index), event): transition
    for event, row in _RFC1661_TABLE.items()
    for index, cell in enumerate(row)
    if (transition := _parse_cell(cell)) is not None
}
"""(state, event) -> transition; a pair that is missing is an illegal event, which is ignored."""

_NEGOTIATING = frozenset({FsmState.REQ_SENT, FsmState.ACK_RCVD, FsmState.ACK_SENT})
_TIMER_STATES = _NEGOTIATING | {FsmState.CLOSING, FsmState.STOPPING}
_VERDICT_STATES = _NEGOTIATING | {FsmState.STOPPED, FsmState.OPENED}
"""States in which the answer to a Configure-Request matters (elsewhere it is Terminate-Ack or nothing)."""
_REPLY_STATES = _NEGOTIATING | {FsmState.OPENED}
"""States in which an answer to our Configure-Request changes what we ask for."""
_LOWER_LAYER_DOWN = frozenset({FsmState.INITIAL, FsmState.STARTING})
_IDENTIFIER_MODULO = 256
_MAX_REASON_TEXT = 200


# ----------------------------------------------------------------------------------------- the machine


class NegotiationFailed(PysstpError):
    """Raised by a subclass hook when negotiation cannot succeed; the automaton then closes the layer.

    The message becomes the :class:`LayerFinished` reason and the data of the Terminate-Request.
    """


class FsmLimits(TypedDict, total=False):
    """Keyword arguments of :class:`OptionFsm` that subclasses pass through unchanged."""

    restart_interval: float
    max_configure: int
    max_terminate: int
    max_failure: int


def configure_reply(
    options: list[Option], rejected: list[Option], naked: list[Option]
) -> tuple[int, list[Option]]:
    """Reject if anything is rejected, else Nak if anything is Nak'ed, else Ack the request.

    RFC 1661 §5.3: options that are not recognisable or acceptable are rejected first; only a request with
    nothing to reject gets a Configure-Nak.
    """
    if rejected:
        return Code.CONFIGURE_REJECT, rejected
    if naked:
        return Code.CONFIGURE_NAK, naked
    return Code.CONFIGURE_ACK, options


def random_nonzero(random_bytes: RandomBytes, size: int, avoid: Collection[bytes] = ()) -> bytes:
    """``size`` random bytes that are not all zero and not in ``avoid`` (magic numbers, interface ids)."""
    value = int.from_bytes(random_bytes(size))
    modulo = 1 << (8 * size)
    while value == 0 or value.to_bytes(size) in avoid:
        value = (value + 1) % modulo  # a deterministic step terminates even with a poor random source
    return value.to_bytes(size)


def protocol_name(protocol: int) -> str:
    """Name of a PPP protocol for messages ("LCP", "IPCP", "0x80fd" when unknown)."""
    try:
        return Protocol(protocol).name
    except ValueError:
        return f"0x{protocol:04x}"


def code_name(code: int) -> str:
    """Name of a control packet code for messages ("Configure-Request", "code 42" when unknown)."""
    try:
        return Code(code).name.replace("_", "-").title()
    except ValueError:
        return f"code {code}"


def printable_text(data: bytes) -> str:
    """Printable form of free text in a packet (Terminate-Request data, Identification...)."""
    text = data.decode("utf-8", "replace").replace("\x00", "").strip()
    return "".join(c if c.isprintable() else "?" for c in text)[:_MAX_REASON_TEXT]


class OptionFsm:
    """RFC 1661 option negotiation automaton for one control protocol.

    Administrative events: :meth:`up`, :meth:`down`, :meth:`open`, :meth:`close`. Packets: :meth:`receive`
    (malformed ones and answers to anything but our latest Configure-Request are silently discarded and
    counted in :attr:`discarded`). Timer: :meth:`next_deadline`, :meth:`handle_timer`.

    Subclass hooks (all optional; the defaults negotiate no options and reject every option of the peer):

    * :meth:`request_options`: the options of our next Configure-Request.
    * :meth:`check_request`: the answer to the peer's Configure-Request (use :func:`configure_reply`).
    * :meth:`apply_peer_options`: we acknowledged the peer's request; adopt what it says.
    * :meth:`on_ack`, :meth:`on_nak`, :meth:`on_reject`: the peer answered our latest request.
    * :meth:`reset_negotiation`: a fresh negotiation starts (not a retransmission): forget Naks/Rejects.
    * :meth:`handle_extra_code`: codes beyond Code-Reject (LCP); unhandled ones are Code-Rejected.
    * :meth:`send_echo_reply`: the RFC's ``ser`` action (LCP only).

    Hooks may raise :class:`NegotiationFailed` to give up: the automaton then Closes the layer with that
    reason. After ``max_failure`` Configure-Naks without an Ack in between, further Naks are turned into
    Configure-Rejects of the same options; if only options the peer did not send were Nak'ed, nothing can
    be rejected and the layer is closed instead.
    """

    __slots__ = (
        "_acked_data",
        "_acked_id",
        "_deadline",
        "_events",
        "_failures",
        "_finish_error",
        "_finish_reason",
        "_identifier",
        "_outgoing",
        "_request_data",
        "_request_id",
        "_request_options",
        "_restart_counter",
        "_state",
        "_terminate_data",
        "discarded",
        "max_configure",
        "max_failure",
        "max_terminate",
        "peer_mru",
        "protocol",
        "restart_interval",
    )

    def __init__(
        self,
        protocol: int,
        *,
        restart_interval: float = Timer.RESTART.value,
        max_configure: int = MAX_CONFIGURE,
        max_terminate: int = MAX_TERMINATE,
        max_failure: int = MAX_FAILURE,
    ) -> None:
        self.protocol = protocol
        self.restart_interval = restart_interval
        self.max_configure = max_configure
        self.max_terminate = max_terminate
        self.max_failure = max_failure
        self.peer_mru = DEFAULT_MRU
        """Largest packet the peer accepts; Code-Rejects are truncated to it. LCP sets it when negotiated;
        every PPP peer must accept 1500 (RFC 1661 §6.1), so NCPs may keep the default."""
        self.discarded = 0
        """Packets silently discarded: malformed, illegal in the current state, or stale answers."""
        self._state = FsmState.INITIAL
        self._restart_counter = 0
        self._failures = 0
        self._deadline: float | None = None
        self._identifier = 0
        self._request_id: int | None = None
        # A gateway holds one automaton per protocol per call, nearly all of them Opened and idle: what
        # only a negotiation needs is kept only during one, and idle ones hold no empty lists
        # (docs/scaling.md, "Numbers").
        self._request_options: list[Option] | None = None
        """The options of our latest Configure-Request while we await its answer, else ``None``."""
        self._request_data = b""
        """Those options encoded, as an Ack must echo them (RFC 1661 §5.2); empty when not awaited."""
        self._acked_id: int | None = None
        self._acked_data = b""
        """The Identifier and options of the peer's Configure-Request we acknowledged last."""
        self._terminate_data = b""
        self._finish_reason = "closed"
        self._finish_error = False
        self._outgoing: list[tuple[int, bytes]] | None = None
        self._events: list[PppEvent] | None = None

    # -------------------------------------------------------------------------------- public interface

    @property
    def state(self) -> FsmState:
        """Current automaton state."""
        return self._state

    @property
    def name(self) -> str:
        """Protocol name used in reasons ("LCP", "IPCP"...)."""
        return protocol_name(self.protocol)

    def up(self, now: float) -> None:
        """The lower layer is up (for LCP: SSTP carries PPP; for an NCP: LCP is Opened and auth is done)."""
        self._dispatch(AutomatonEvent.UP, now)

    def down(self, now: float) -> None:
        """The lower layer went down."""
        self._dispatch(AutomatonEvent.DOWN, now)

    def open(self, now: float) -> None:
        """Administrative Open: the link may be negotiated."""
        self._dispatch(AutomatonEvent.OPEN, now)

    def close(self, now: float, reason: bytes = b"") -> None:
        """Administrative Close; ``reason`` goes into the Terminate-Request and the LayerFinished reason."""
        self._close(now, printable_text(reason) or "closed locally", reason, error=False)

    def protocol_rejected(self, now: float) -> None:
        """The peer Protocol-Rejected this protocol (RFC 1661 §5.7): RXJ-, the layer cannot run."""
        self._will_finish(f"peer Protocol-Rejected {self.name}", error=True)
        self._dispatch(AutomatonEvent.RXJ_MINUS, now)

    def receive(self, packet: bytes, now: float) -> None:
        """Handle one packet of this protocol (the PPP information field)."""
        if self._state in _LOWER_LAYER_DOWN:
            self.discarded += 1  # illegal while the lower layer is down
            return
        try:
            decoded = ControlPacket.decode(packet)
            self._receive(decoded, now)
        except PppError:
            self.discarded += 1

    def next_deadline(self) -> float | None:
        """When the restart timer expires, or None when it is not running."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """Run the restart timer's TO+ or TO- event if it has expired."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._restart_counter > 0:
            self._dispatch(AutomatonEvent.TO_PLUS, now)
            return
        if self._state == FsmState.REQ_SENT:
            self._will_finish(f"peer did not answer {self.max_configure} Configure-Requests", error=True)
        elif self._state == FsmState.ACK_SENT:
            self._will_finish(f"peer did not acknowledge {self.max_configure} Configure-Requests", error=True)
        elif self._state == FsmState.ACK_RCVD:
            self._will_finish("peer acknowledged our Configure-Request but sent none of its own", error=True)
        self._dispatch(AutomatonEvent.TO_MINUS, now)

    def take_outgoing(self) -> list[tuple[int, bytes]]:
        """Packets to send: (protocol, packet without ``ff 03`` and protocol field)."""
        outgoing, self._outgoing = self._outgoing, None
        return outgoing if outgoing is not None else []

    def take_events(self) -> list[PppEvent]:
        """Events since the last call."""
        events, self._events = self._events, None
        return events if events is not None else []

    # ------------------------------------------------------------------------------------ subclass hooks

    def request_options(self) -> list[Option]:
        """Options of our next Configure-Request."""
        return []

    def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        """Answer to the peer's Configure-Request: (Code.CONFIGURE_ACK/NAK/REJECT, options to send)."""
        return configure_reply(options, options, [])

    def apply_peer_options(self, options: list[Option]) -> None:
        """We are acknowledging the peer's Configure-Request with these options."""

    def on_ack(self, options: list[Option]) -> None:
        """The peer acknowledged our latest Configure-Request (these are its options)."""

    def on_nak(self, options: list[Option]) -> None:
        """The peer Nak'ed our latest Configure-Request; adjust what :meth:`request_options` returns."""

    def on_reject(self, options: list[Option]) -> None:
        """The peer rejected these options of our latest Configure-Request; stop asking for them."""

    def reset_negotiation(self) -> None:
        """A fresh negotiation starts (Open, Up, renegotiation): start again from the configured wishes."""

    def handle_extra_code(self, packet: ControlPacket, now: float) -> bool:
        """Handle a code beyond Code-Reject; return False to Code-Reject it (RUC)."""
        return False

    def send_echo_reply(self, packet: ControlPacket) -> None:
        """The ``ser`` action: answer an Echo-Request (only LCP dispatches RXR)."""

    # ------------------------------------------------------------------------------- for subclasses

    def _send(self, code: int, identifier: int, data: bytes = b"") -> None:
        """Queue a packet of this protocol, truncated to the peer's MRU."""
        packet = ControlPacket(code, identifier, data[: self.peer_mru - CONTROL_HEADER_SIZE])
        if self._outgoing is None:
            self._outgoing = [(self.protocol, packet.encode())]
        else:
            self._outgoing.append((self.protocol, packet.encode()))

    def _new_identifier(self) -> int:
        self._identifier = (self._identifier + 1) % _IDENTIFIER_MODULO
        return self._identifier

    def _emit(self, event: PppEvent) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def _dispatch(self, event: AutomatonEvent, now: float, packet: ControlPacket | None = None) -> None:
        """Run the table's transition for ``event`` in the current state (ignored when illegal)."""
        self._run(event, now, packet, None)

    # -------------------------------------------------------------------------------------- internals

    @property
    def finish_reason(self) -> str:
        """Why the layer is finishing (or finished): the reason its LayerFinished event carries."""
        return self._finish_reason

    def _will_finish(self, reason: str, *, error: bool) -> None:
        """Remember why the layer is about to finish, for the LayerFinished event of the ``tlf`` action."""
        self._finish_reason = reason
        self._finish_error = error

    def _close(self, now: float, reason: str, terminate_data: bytes, *, error: bool) -> None:
        self._will_finish(reason, error=error)
        self._terminate_data = terminate_data
        self._dispatch(AutomatonEvent.CLOSE, now)

    def _fail(self, now: float, reason: str) -> None:
        self._close(now, reason, reason.encode(), error=True)

    def _receive(self, packet: ControlPacket, now: float) -> None:
        code = packet.code
        if code == Code.CONFIGURE_REQUEST:
            self._receive_configure_request(packet, now)
        elif code in (Code.CONFIGURE_ACK, Code.CONFIGURE_NAK, Code.CONFIGURE_REJECT):
            self._receive_configure_reply(packet, now)
        elif code == Code.TERMINATE_REQUEST:
            if self._state == FsmState.OPENED:
                text = printable_text(packet.data)
                self._will_finish("peer sent Terminate-Request" + (f": {text}" if text else ""), error=False)
            self._dispatch(AutomatonEvent.RTR, now, packet)
        elif code == Code.TERMINATE_ACK:
            self._dispatch(AutomatonEvent.RTA, now, packet)
        elif code == Code.CODE_REJECT:
            self._receive_code_reject(packet, now)
        elif not self.handle_extra_code(packet, now):
            self._dispatch(AutomatonEvent.RUC, now, packet)

    def _receive_configure_request(self, packet: ControlPacket, now: float) -> None:
        options = decode_options(packet.data)
        if (
            self._state == FsmState.OPENED
            and packet.identifier == self._acked_id
            and packet.data == self._acked_data
        ):
            # A peer must change the Identifier once it got a reply (RFC 1661 §5.1), so this is a copy of
            # the request we acknowledged, retransmitted before our Ack arrived (SoftEther does this).
            # Acknowledge it again instead of renegotiating.
            self._send(Code.CONFIGURE_ACK, packet.identifier, packet.data)
            return
        if self._state not in _VERDICT_STATES:
            self._dispatch(AutomatonEvent.RCR_MINUS, now, packet)  # Terminate-Ack or nothing either way
            return
        try:
            code, reply = self.check_request(options)
        except NegotiationFailed as failure:
            self._fail(now, str(failure))
            return
        if code == Code.CONFIGURE_NAK:
            if self._failures >= self.max_failure:
                naked_types = {option.type for option in reply}
                reply = [option for option in options if option.type in naked_types]
                code = Code.CONFIGURE_REJECT
                if not reply:
                    self._fail(now, f"{self.name} did not converge: peer ignored {self.max_failure} Naks")
                    return
            else:
                self._failures += 1
        event = AutomatonEvent.RCR_PLUS if code == Code.CONFIGURE_ACK else AutomatonEvent.RCR_MINUS
        self._run(event, now, packet, (code, reply))

    def _receive_configure_reply(self, packet: ControlPacket, now: float) -> None:
        requested = self._request_options
        if requested is None or packet.identifier != self._request_id:
            self.discarded += 1  # a late duplicate, or an answer to a request we did not send
            return
        if packet.code == Code.CONFIGURE_ACK:
            if packet.data != self._request_data:
                self.discarded += 1  # RFC 1661 §5.2: an Ack must echo our options exactly
                return
            options, hook, event = requested, self.on_ack, AutomatonEvent.RCA
        else:
            options = decode_options(packet.data)
            if packet.code == Code.CONFIGURE_REJECT and any(o not in requested for o in options):
                self.discarded += 1  # RFC 1661 §5.4: a Reject must quote our options verbatim
                return
            hook = self.on_nak if packet.code == Code.CONFIGURE_NAK else self.on_reject
            event = AutomatonEvent.RCN
        self._request_options, self._request_data = None, b""
        if self._state in _REPLY_STATES:
            try:
                hook(options)
            except NegotiationFailed as failure:
                self._fail(now, str(failure))
                return
        self._dispatch(event, now, packet)

    def _receive_code_reject(self, packet: ControlPacket, now: float) -> None:
        if not packet.data:
            raise PppError("Code-Reject without the rejected packet")
        rejected = packet.data[0]
        if rejected in NCP_CODES:
            # Without the codes of the automaton itself the protocol cannot work (RFC 1661 §5.6).
            self._will_finish(f"peer Code-Rejected {code_name(rejected)}", error=True)
            self._dispatch(AutomatonEvent.RXJ_MINUS, now, packet)
        else:
            self._emit(CodeRejected(self.protocol, rejected))
            self._dispatch(AutomatonEvent.RXJ_PLUS, now, packet)

    def _run(
        self,
        event: AutomatonEvent,
        now: float,
        packet: ControlPacket | None,
        reply: tuple[int, list[Option]] | None,
    ) -> None:
        transition = TRANSITIONS.get((self._state, event))
        if transition is None:
            if packet is not None:
                self.discarded += 1
            return
        for action in transition.actions:
            self._act(action, transition, now, packet, reply)
        self._state = transition.state
        if self._state not in _TIMER_STATES:
            self._deadline = None

    def _act(
        self,
        action: Action,
        transition: Transition,
        now: float,
        packet: ControlPacket | None,
        reply: tuple[int, list[Option]] | None,
    ) -> None:
        if action is Action.TLU:
            self._emit(LayerUp(self.protocol))
        elif action is Action.TLD:
            self._emit(LayerDown(self.protocol))
        elif action is Action.TLS:
            self._emit(LayerStarted(self.protocol))
        elif action is Action.TLF:
            self._emit(LayerFinished(self.protocol, self._finish_reason, self._finish_error))
        elif action is Action.IRC:
            terminating = Action.STR in transition.actions
            self._restart_counter = self.max_terminate if terminating else self.max_configure
        elif action is Action.ZRC:
            self._restart_counter = 0
            self._deadline = now + self.restart_interval
        elif action is Action.SCR:
            self._send_configure_request(now)
        elif action is Action.STR:
            self._send(Code.TERMINATE_REQUEST, self._new_identifier(), self._terminate_data)
            self._restart_counter -= 1
            self._deadline = now + self.restart_interval
        elif action in (Action.SCA, Action.SCN):
            assert packet is not None and reply is not None  # only RCR+/RCR- carry these actions
            code, options = reply
            if action is Action.SCA:
                self._failures = 0
                self._acked_id, self._acked_data = packet.identifier, packet.data
                self.apply_peer_options(options)
                self._send(Code.CONFIGURE_ACK, packet.identifier, packet.data)  # echoed exactly
            else:
                self._send(code, packet.identifier, encode_options(options))
        elif action is Action.STA:
            assert packet is not None  # sta only answers a received packet
            self._send(Code.TERMINATE_ACK, packet.identifier)
        elif action is Action.SCJ:
            assert packet is not None  # scj only answers a received packet
            self._send(Code.CODE_REJECT, self._new_identifier(), packet.encode())
        else:  # Action.SER
            assert packet is not None  # ser only answers a received Echo-Request
            self.send_echo_reply(packet)

    def _send_configure_request(self, now: float) -> None:
        if self._state not in _NEGOTIATING:
            # Not a retransmission: start over from the configured wishes (as pppd's fsm_sconfreq does).
            self.reset_negotiation()
            self._failures = 0
        self._request_options = self.request_options()
        self._request_data = encode_options(self._request_options)
        self._request_id = self._new_identifier()
        self._send(Code.CONFIGURE_REQUEST, self._request_id, self._request_data)
        self._restart_counter -= 1
        self._deadline = now + self.restart_interval
