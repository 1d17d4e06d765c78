"""The RFC 1661 automaton: table, conversations in memory, timers, termination, rejects, Max-Failure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.ppp.constants import Code, Protocol
from pysstp.ppp.events import CodeRejected, LayerDown, LayerFinished, LayerStarted, LayerUp
from pysstp.ppp.fsm import (
    TRANSITIONS,
    Action,
    AutomatonEvent,
    FsmState,
    NegotiationFailed,
    OptionFsm,
    configure_reply,
)
from pysstp.ppp.packet import ControlPacket, Option, decode_options, encode_options

from helpers.ppp_wire import Wire, sent

PROTOCOL = Protocol.CCP  # any control protocol; the base automaton negotiates nothing


class Wishful(OptionFsm):
    """Asks for option 1 = ``wish``; accepts option 1 only with value ``accept`` (Naks anything else).

    ``hint``: Nak a request without option 1 too. ``stubborn``: ignore Naks.
    """

    def __init__(
        self, wish: bytes | None, accept: bytes | None, *, hint: bool = False, stubborn: bool = False
    ) -> None:
        super().__init__(PROTOCOL)
        self.wish = wish
        self.accept = accept
        self.hint = hint
        self.stubborn = stubborn

    def request_options(self) -> list[Option]:
        return [] if self.wish is None else [Option(1, self.wish)]

    def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        naked = [
            Option(1, self.accept) for o in options if self.accept is not None and o.value != self.accept
        ]
        if self.hint and self.accept is not None and not options:
            naked = [Option(1, self.accept)]  # a hint for an option the peer did not send
        return configure_reply(options, [o for o in options if o.type != 1], naked)

    def on_nak(self, options: list[Option]) -> None:
        if not self.stubborn:
            self.wish = options[0].value

    def on_reject(self, options: list[Option]) -> None:
        self.wish = None


def events_of(wire: Wire, side: str) -> list[type]:
    return [type(e) for e in (wire.events_a if side == "a" else wire.events_b)]


def opened_pair() -> Wire:
    wire = Wire(OptionFsm(PROTOCOL), OptionFsm(PROTOCOL))
    wire.start()
    assert wire.a.state == wire.b.state == FsmState.OPENED
    return wire


# -------------------------------------------------------------------------------------------- the table


def test_table_matches_rfc_samples() -> None:
    assert len(TRANSITIONS) == 120  # every cell of the RFC's table that is not "-"
    assert TRANSITIONS[(FsmState.OPENED, AutomatonEvent.RTR)].actions == (Action.TLD, Action.ZRC, Action.STA)
    assert TRANSITIONS[(FsmState.OPENED, AutomatonEvent.RTR)].state == FsmState.STOPPING
    assert TRANSITIONS[(FsmState.STOPPED, AutomatonEvent.RCR_PLUS)].actions == (
        Action.IRC,
        Action.SCR,
        Action.SCA,
    )
    assert TRANSITIONS[(FsmState.ACK_RCVD, AutomatonEvent.RCR_PLUS)].state == FsmState.OPENED
    assert TRANSITIONS[(FsmState.INITIAL, AutomatonEvent.UP)].actions == ()
    assert (FsmState.INITIAL, AutomatonEvent.RCA) not in TRANSITIONS


# ------------------------------------------------------------------------------------------- opening


def test_two_machines_open() -> None:
    wire = opened_pair()
    assert events_of(wire, "a") == [LayerStarted, LayerUp]
    assert events_of(wire, "b") == [LayerStarted, LayerUp]
    assert wire.a.next_deadline() is None


def test_open_when_first_request_is_lost() -> None:
    first = True

    def drop_first(direction: str, packet: ControlPacket) -> bool:
        nonlocal first
        lost = first and direction == "a>b" and packet.code == Code.CONFIGURE_REQUEST
        first = first and not lost
        return lost

    wire = Wire(OptionFsm(PROTOCOL), OptionFsm(PROTOCOL), drop=drop_first)
    wire.start()
    assert wire.a.state == FsmState.ACK_SENT
    assert wire.b.state == FsmState.ACK_RCVD
    wire.run(until=3.0)
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert wire.now == 3.0


def test_open_with_naks_and_rejects() -> None:
    wire = Wire(Wishful(b"\x01", accept=b"\x02"), Wishful(b"\x02", accept=b"\x01"))
    wire.start()
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert Code.CONFIGURE_NAK not in wire.codes("a>b") + wire.codes("b>a")

    wire = Wire(Wishful(b"\x05", accept=b"\x02"), OptionFsm(PROTOCOL))
    wire.start()
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert wire.codes("b>a") == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_REJECT, Code.CONFIGURE_ACK]


def test_peer_never_answers() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.open(0.0)
    fsm.up(0.0)
    times = [0.0]
    while (deadline := fsm.next_deadline()) is not None:
        fsm.handle_timer(deadline - 0.5)  # too early: nothing happens
        fsm.handle_timer(deadline)
        times.append(deadline)
    requests = [ControlPacket.decode(p) for p in sent(fsm)]
    assert [p.code for p in requests] == [Code.CONFIGURE_REQUEST] * 10
    assert len({p.identifier for p in requests}) == 10  # a new identifier for every request
    assert times[-1] == 30.0
    assert fsm.state == FsmState.STOPPED
    assert fsm.take_events()[-1] == LayerFinished(
        PROTOCOL, "peer did not answer 10 Configure-Requests", error=True
    )


def test_restart_interval_and_limits_are_configurable() -> None:
    fsm = OptionFsm(PROTOCOL, restart_interval=1.0, max_configure=2)
    fsm.open(0.0)
    fsm.up(0.0)
    fsm.handle_timer(1.0)
    fsm.handle_timer(2.0)
    assert len(sent(fsm)) == 2
    assert fsm.state == FsmState.STOPPED


# ---------------------------------------------------------------------------------------- termination


def test_terminate_exchange() -> None:
    wire = opened_pair()
    wire.a.close(wire.now, b"bye")
    wire.pump()
    assert wire.a.state == FsmState.CLOSED
    assert wire.events_a[-1] == LayerFinished(PROTOCOL, "bye", error=False)
    assert wire.b.state == FsmState.STOPPING
    assert wire.events_b[-1] == LayerDown(PROTOCOL)
    assert [p.data for d, p in wire.log if p.code == Code.TERMINATE_REQUEST] == [b"bye"]
    wire.run(until=10.0)
    assert wire.b.state == FsmState.STOPPED
    assert wire.events_b[-1] == LayerFinished(PROTOCOL, "peer sent Terminate-Request: bye", error=False)


def test_close_without_answer_sends_max_terminate_requests() -> None:
    wire = opened_pair()
    wire.drop = lambda direction, packet: True
    wire.a.close(wire.now)
    wire.run(until=100.0)
    assert wire.codes("a>b")[-2:] == [Code.TERMINATE_REQUEST, Code.TERMINATE_REQUEST]
    assert wire.codes("a>b").count(Code.TERMINATE_REQUEST) == 2
    assert wire.a.state == FsmState.CLOSED
    assert wire.events_a[-2:] == [LayerDown(PROTOCOL), LayerFinished(PROTOCOL, "closed locally", error=False)]


def test_closed_state_answers_with_terminate_ack() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.up(0.0)
    assert fsm.state == FsmState.CLOSED
    fsm.receive(ControlPacket(Code.CONFIGURE_REQUEST, 9, b"").encode(), 0.0)
    assert sent(fsm) == [ControlPacket(Code.TERMINATE_ACK, 9).encode()]


def test_down_and_close_before_up() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.open(0.0)
    fsm.close(0.0)
    assert fsm.state == FsmState.INITIAL
    assert fsm.take_events() == [
        LayerStarted(PROTOCOL),
        LayerFinished(PROTOCOL, "closed locally", error=False),
    ]


# ----------------------------------------------------------------------------------------- rejections


def test_unknown_code_is_code_rejected() -> None:
    wire = opened_pair()
    unknown = ControlPacket(42, 7, b"hello").encode()
    wire.a.receive(unknown + b"\x00\x00", wire.now)  # padding is not part of the rejected packet
    (reject,) = [ControlPacket.decode(p) for p in sent(wire.a)]
    assert reject.code == Code.CODE_REJECT
    assert reject.data == unknown
    wire.b.receive(reject.encode(), wire.now)
    assert wire.b.take_events() == [CodeRejected(PROTOCOL, 42)]
    assert wire.b.state == FsmState.OPENED


def test_code_reject_is_truncated_to_peer_mru() -> None:
    wire = opened_pair()
    wire.a.peer_mru = 100
    wire.a.receive(ControlPacket(42, 7, bytes(500)).encode(), wire.now)
    (reject,) = sent(wire.a)
    assert len(reject) == 100


def test_code_reject_of_configure_request_is_catastrophic() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.open(0.0)
    fsm.up(0.0)
    (request,) = sent(fsm)
    fsm.receive(ControlPacket(Code.CODE_REJECT, 1, request).encode(), 0.5)
    assert fsm.state == FsmState.STOPPED
    assert fsm.take_events()[-1] == LayerFinished(
        PROTOCOL, "peer Code-Rejected Configure-Request", error=True
    )


def test_code_reject_in_opened_terminates() -> None:
    wire = opened_pair()
    wire.a.receive(ControlPacket(Code.CODE_REJECT, 1, b"\x05\x01\x00\x04").encode(), wire.now)
    assert wire.a.state == FsmState.STOPPING
    assert ControlPacket.decode(sent(wire.a)[0]).code == Code.TERMINATE_REQUEST


def test_protocol_rejected_stops_the_layer() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.open(0.0)
    fsm.up(0.0)
    fsm.protocol_rejected(1.0)
    assert fsm.state == FsmState.STOPPED
    assert fsm.take_events()[-1] == LayerFinished(PROTOCOL, "peer Protocol-Rejected CCP", error=True)
    assert fsm.next_deadline() is None


# ---------------------------------------------------------------------------------------- renegotiation


def test_renegotiation_from_opened() -> None:
    wire = opened_pair()
    wire.events_a.clear()
    wire.events_b.clear()
    wire.a.down(wire.now)
    wire.a.up(wire.now)
    wire.pump()
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert events_of(wire, "a") == [LayerDown, LayerUp]
    assert events_of(wire, "b") == [LayerDown, LayerUp]


def test_configure_request_in_opened_renegotiates() -> None:
    wire = opened_pair()
    wire.b.receive(ControlPacket(Code.CONFIGURE_REQUEST, 77, b"").encode(), wire.now)
    replies = [ControlPacket.decode(p) for p in sent(wire.b)]
    assert [p.code for p in replies] == [Code.CONFIGURE_REQUEST, Code.CONFIGURE_ACK]
    assert replies[1].identifier == 77
    assert wire.b.state == FsmState.ACK_SENT
    assert wire.b.take_events() == [LayerDown(PROTOCOL)]


# ------------------------------------------------------------------------------------------ Max-Failure


def test_max_failure_turns_nak_into_reject() -> None:
    stubborn = Wishful(b"\x01", accept=None, stubborn=True)
    wire = Wire(stubborn, Wishful(None, accept=b"\x02"))
    wire.start()
    b_codes = wire.codes("b>a")
    assert b_codes.count(Code.CONFIGURE_NAK) == 5
    assert b_codes.index(Code.CONFIGURE_REJECT) > max(i for i, c in enumerate(b_codes) if c == 3)
    assert stubborn.wish is None  # the Reject made it drop the option
    assert wire.a.state == wire.b.state == FsmState.OPENED


def test_max_failure_with_only_hints_closes() -> None:
    wire = Wire(Wishful(None, accept=None, stubborn=True), Wishful(None, accept=b"\x02", hint=True))
    wire.start()
    assert wire.codes("b>a").count(Code.CONFIGURE_NAK) == 5
    assert wire.b.state == FsmState.CLOSED
    assert wire.events_b[-1] == LayerFinished(
        PROTOCOL, "CCP did not converge: peer ignored 5 Naks", error=True
    )


def test_hook_failure_closes_with_reason() -> None:
    class Picky(OptionFsm):
        def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
            raise NegotiationFailed("no way")

    wire = Wire(Picky(PROTOCOL), OptionFsm(PROTOCOL))
    wire.start()
    assert wire.a.state == FsmState.CLOSED
    assert wire.events_a[-1] == LayerFinished(PROTOCOL, "no way", error=True)
    assert [p.data for d, p in wire.log if p.code == Code.TERMINATE_REQUEST] == [b"no way"]


# -------------------------------------------------------------------------------- identifier discipline


def requesting(fsm: OptionFsm) -> ControlPacket:
    fsm.open(0.0)
    fsm.up(0.0)
    (request,) = sent(fsm)
    return ControlPacket.decode(request)


def test_stale_and_mismatched_answers_are_discarded() -> None:
    fsm = Wishful(b"\x01", accept=None)
    request = requesting(fsm)
    fsm.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier + 1, request.data).encode(), 0.1)
    fsm.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier, b"\x01\x03\x02").encode(), 0.1)
    fsm.receive(ControlPacket(Code.CONFIGURE_REJECT, request.identifier, b"\x02\x02").encode(), 0.1)
    assert fsm.state == FsmState.REQ_SENT
    assert fsm.discarded == 3
    fsm.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier, request.data).encode(), 0.1)
    assert fsm.state == FsmState.ACK_RCVD
    fsm.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier, request.data).encode(), 0.2)
    assert fsm.state == FsmState.ACK_RCVD  # a duplicate Ack must not look like a crossed connection
    assert fsm.discarded == 4


def test_retransmission_uses_new_identifier_and_late_answer_is_dropped() -> None:
    fsm = OptionFsm(PROTOCOL)
    first = requesting(fsm)
    fsm.handle_timer(3.0)
    (second,) = [ControlPacket.decode(p) for p in sent(fsm)]
    assert second.identifier != first.identifier
    fsm.receive(ControlPacket(Code.CONFIGURE_ACK, first.identifier).encode(), 3.1)
    assert fsm.state == FsmState.REQ_SENT


def test_malformed_packets_are_counted() -> None:
    fsm = OptionFsm(PROTOCOL)
    fsm.receive(b"\x01\x01\x00\x04", 0.0)  # lower layer down: illegal
    requesting(fsm)
    for garbage in (b"", b"\x01", b"\x01\x01\x00\x09", b"\x01\x01\x00\x05\x01", b"\x07\x01\x00\x04"):
        fsm.receive(garbage, 0.1)
    assert fsm.discarded == 6
    assert fsm.state == FsmState.REQ_SENT


# ------------------------------------------------------------------------------------------- robustness


def drive(fsm: OptionFsm, steps: list[int]) -> None:
    """Put the machine into some reachable state with administrative events and timeouts."""
    now = 0.0
    for step in steps:
        now += 1.0
        [fsm.up, fsm.down, fsm.open, fsm.close, fsm.handle_timer][step](now + 30.0 * (step == 4))


@settings(max_examples=300)
@given(st.lists(st.integers(0, 4), max_size=6), st.lists(st.binary(max_size=24), max_size=6))
def test_random_packets_in_any_state_never_raise(steps: list[int], packets: list[bytes]) -> None:
    for fsm in (OptionFsm(PROTOCOL), Wishful(b"\x01", accept=b"\x01")):
        drive(fsm, steps)
        for data in packets:
            fsm.receive(data, 50.0)
        fsm.handle_timer(100.0)
        for _, data in fsm.take_outgoing():
            ControlPacket.decode(data)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(1, 14), st.integers(0, 255), st.binary(max_size=12)), max_size=8))
def test_well_formed_random_packets_never_raise(packets: list[tuple[int, int, bytes]]) -> None:
    wire = opened_pair()
    for code, identifier, data in packets:
        wire.a.receive(ControlPacket(code, identifier, data).encode(), wire.now)
    for data in sent(wire.a):
        reply = ControlPacket.decode(data)
        if reply.code <= Code.CONFIGURE_REJECT:
            decode_options(reply.data)


@pytest.mark.parametrize("state_steps", [[2, 0], [0, 2, 3], [2, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]])
def test_timer_only_runs_in_timer_states(state_steps: list[int]) -> None:
    fsm = OptionFsm(PROTOCOL)
    drive(fsm, state_steps)
    running = fsm.next_deadline() is not None
    assert running == (fsm.state in {4, 5, 6, 7, 8})


def test_ack_is_exact_echo() -> None:
    fsm = Wishful(None, accept=None)
    requesting(fsm)
    request = ControlPacket(Code.CONFIGURE_REQUEST, 3, encode_options([Option(1, b"\x00"), Option(1)]))
    fsm.receive(request.encode(), 0.1)
    (ack,) = sent(fsm)
    assert ack == ControlPacket(Code.CONFIGURE_ACK, 3, request.data).encode()


def test_retransmitted_request_in_opened_is_acked_again() -> None:
    """A copy of the request we acknowledged (same id, same options) is not a renegotiation."""
    wire = opened_pair()
    (request,) = [p for d, p in wire.log if d == "a>b" and p.code == Code.CONFIGURE_REQUEST]
    wire.events_b.clear()
    wire.b.receive(request.encode(), wire.now)
    assert sent(wire.b) == [ControlPacket(Code.CONFIGURE_ACK, request.identifier, request.data).encode()]
    assert wire.b.state == FsmState.OPENED
    assert wire.b.take_events() == []
    wire.b.receive(ControlPacket(Code.CONFIGURE_REQUEST, request.identifier + 1, request.data).encode(), 1.0)
    assert wire.b.state == FsmState.ACK_SENT  # a new identifier: the peer renegotiates
