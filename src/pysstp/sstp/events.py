"""Events the SSTP machines report through ``take_events()``: plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

from pysstp.sstp.binding import BindingFailure
from pysstp.sstp.constants import HashProtocol
from pysstp.sstp.http import HttpRequest, HttpResponse
from pysstp.sstp.packets import StatusInfo


@dataclass(frozen=True, slots=True)
class SstpEvent:
    """Base of every SSTP machine event."""


@dataclass(frozen=True, slots=True)
class HttpRequestReceived(SstpEvent):
    """Server: an SSTP request arrived and was answered with 200."""

    request: HttpRequest


@dataclass(frozen=True, slots=True)
class HttpResponseReceived(SstpEvent):
    """Client: the server answered 200; CALL_CONNECT_REQUEST has been sent."""

    response: HttpResponse


@dataclass(frozen=True, slots=True)
class CallConnectRequested(SstpEvent):
    """Server: CALL_CONNECT_ACK has been sent; start PPP now."""


@dataclass(frozen=True, slots=True)
class CallConnectAcked(SstpEvent):
    """Client: the server accepted the call; start PPP now. ``hash_protocol`` is the one this client chose."""

    hash_protocol: HashProtocol
    nonce: bytes


@dataclass(frozen=True, slots=True)
class PppFrameReceived(SstpEvent):
    """One PPP frame from a data packet, as sent (normally ``ff 03`` + protocol + information)."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class CallConnectedSent(SstpEvent):
    """Client: CALL_CONNECTED has been sent; data may flow."""

    hash_protocol: HashProtocol


@dataclass(frozen=True, slots=True)
class CallConnectedVerified(SstpEvent):
    """Server: the client's crypto binding checked out; data may flow."""

    hash_protocol: HashProtocol


@dataclass(frozen=True, slots=True)
class CryptoBindingFailed(SstpEvent):
    """Server: the client's CALL_CONNECTED failed a check; CALL_ABORT has been sent."""

    reason: BindingFailure


@dataclass(frozen=True, slots=True)
class PeerDisconnecting(SstpEvent):
    """The peer sent CALL_DISCONNECT (an orderly end); CALL_DISCONNECT_ACK has been sent."""

    status: StatusInfo | None


@dataclass(frozen=True, slots=True)
class PeerAborted(SstpEvent):
    """The peer sent CALL_ABORT."""

    status: StatusInfo | None


@dataclass(frozen=True, slots=True)
class ConnectionClosed(SstpEvent):
    """The call is over: write out ``data_to_send()`` one last time, then close TLS and TCP.

    ``error`` is False only for an orderly disconnect. Nothing more is produced after this event.
    """

    reason: str
    error: bool


Event = (
    HttpRequestReceived
    | HttpResponseReceived
    | CallConnectRequested
    | CallConnectAcked
    | PppFrameReceived
    | CallConnectedSent
    | CallConnectedVerified
    | CryptoBindingFailed
    | PeerDisconnecting
    | PeerAborted
    | ConnectionClosed
)
"""Every event an SSTP machine reports (for exhaustive ``match``/``isinstance`` narrowing)."""
