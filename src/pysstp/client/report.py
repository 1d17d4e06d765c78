"""What the user reads: one line per protocol step, the summary line, and failures that name the fix.

Pure functions from events to text, so every message can be tested without a network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv6Address

from pysstp import link
from pysstp.client.live import si
from pysstp.link import ABORTED_AFTER_BINDING, CallEvent, LinkDown, LinkUp
from pysstp.ppp.auth.base import FAILURE_MESSAGE
from pysstp.ppp.auth.mschapv2_core import SERVER_SAYS
from pysstp.ppp.constants import AuthMethod, Protocol
from pysstp.sstp.constants import HashProtocol

METHOD_NAMES = {
    AuthMethod.PAP: "PAP",
    AuthMethod.CHAP_MD5: "CHAP-MD5",
    AuthMethod.MSCHAP_V2: "MS-CHAPv2",
    AuthMethod.EAP_MSCHAP_V2: "EAP-MS-CHAPv2",
    AuthMethod.EAP_MD5: "EAP-MD5",
    AuthMethod.EAP_TLS: "EAP-TLS",
    AuthMethod.PEAP: "PEAP",
}
HASH_NAMES = {HashProtocol.SHA1: "SHA-1", HashProtocol.SHA256: "SHA-256"}

# MS-CHAP failure codes (RFC 2759 §6 and Windows' RAS error numbers): what each means for the user.
MSCHAP_ERRORS = {
    645: "the server could not check the login (its authentication service did not answer); try again later",
    646: "the account may not log in at this time of day",
    647: "the account is disabled",
    648: "the password has expired; change it on a Windows machine of that domain",
    649: "the account has no dial-in permission on the server",
    691: "wrong user name or password",
    709: "the password must be changed, which pysstp cannot do yet",
}


NOT_SSTP = "it speaks HTTPS but is not an SSTP server; check the host and the port"
# The SSTP machine's reasons (sstp/machine.py) for a server that is HTTPS but not SSTP.
HTTP_FAILED = "HTTP handshake failed"
HTTP_TIMED_OUT = "timed out in the HTTP handshake"
NOT_DELINEATED = "SSTP stream cannot be delineated"


@dataclass(frozen=True, slots=True)
class Step:
    """One line of progress: the layer it belongs to, the text, and how loud it is."""

    layer: str
    text: str
    level: int = logging.INFO


def method_name(method: AuthMethod | None) -> str:
    """E.g. 'MS-CHAPv2'; 'no authentication' when the server asked for none."""
    return METHOD_NAMES[method] if method is not None else "no authentication"


def hash_name(protocol: HashProtocol | None) -> str:
    """E.g. 'SHA-256'."""
    return HASH_NAMES.get(protocol, str(protocol)) if protocol is not None else "no"


def describe(event: CallEvent) -> Step | None:
    """The progress line for an event, or ``None`` for events the app handles itself (up, down)."""
    if isinstance(event, link.HttpResponseReceived):
        return Step(
            "HTTP", f"server accepted the SSTP request ({event.response.status} {event.response.reason})"
        )
    if isinstance(event, link.CallConnectAcked):
        return Step("SSTP", f"call accepted; crypto binding will use {hash_name(event.hash_protocol)}")
    if isinstance(event, link.LcpOpened):
        return Step(
            "LCP",
            f"link open: authentication {method_name(event.auth_method)}, MRU ours {event.our_mru}, "
            f"server's {event.peer_mru}",
        )
    if isinstance(event, link.Authenticated):
        return Step("auth", f"{method_name(event.method)}: authenticated as {event.user}")
    if isinstance(event, link.AuthenticationFailed):
        # The call ends with this failure as its error line (setup_failure): once is enough.
        return Step("auth", auth_failure(event), logging.DEBUG)
    if isinstance(event, link.CallConnectedSent):
        return Step("binding", f"{hash_name(event.hash_protocol)} crypto binding sent (CALL_CONNECTED)")
    if isinstance(event, link.Ipv4Up):
        dns = ", ".join(map(str, event.dns_servers)) or "none"
        return Step("IPCP", f"address {event.local_address}, server {event.peer_address}, DNS {dns}")
    if isinstance(event, link.Ipv6Up):
        return Step("IPv6CP", f"interface id {event.local_interface_id.hex(':')}")
    if isinstance(event, link.NetworkProtocolDown):
        if event.protocol is Protocol.IPV6CP and "rejected" in event.reason:
            # RFC 1661 §5.7 Protocol-Reject: a server without IPv6 says so on every call; not a fault.
            return Step("IPv6CP", "the server does not offer IPv6 (it rejected IPv6CP); IPv4 only")
        return Step("NCP", f"{event.protocol.name} down: {event.reason}", logging.WARNING)
    if isinstance(event, link.PhaseChanged):
        return Step("PPP", f"phase {event.phase.value}", logging.DEBUG)
    if isinstance(event, link.PeerAborted | link.PeerDisconnecting):
        status = event.status.status if event.status is not None else None
        kind = "aborted" if isinstance(event, link.PeerAborted) else "disconnected"
        return Step("SSTP", f"server {kind} the call (status {status})", logging.DEBUG)
    return None


def auth_failure(event: link.AuthenticationFailed) -> str:
    """E.g. 'authentication failed (E=691): wrong user name or password'."""
    code = f" (E={event.error_code})" if event.error_code is not None else ""
    meaning = MSCHAP_ERRORS.get(event.error_code or 0)
    if meaning is None and event.method in (AuthMethod.EAP_TLS, AuthMethod.PEAP):
        meaning = event.reason
    elif meaning is None:
        meaning = f"{event.reason}; check the user name and password"
        if event.method is AuthMethod.PAP:
            meaning += ", or whether the server allows PAP"
    else:
        # The server's own words (a RADIUS Reply-Message, "account locked ..."), unless they are the
        # generic text of a pysstp server, which the meaning already says better.
        said = event.reason.partition(SERVER_SAYS)[2]
        if said and said != repr(FAILURE_MESSAGE):
            meaning += f"{SERVER_SAYS}{said}"
    return f"authentication failed{code} with {method_name(event.method)} as {event.user!r}: {meaning}"


def setup_failure(
    down: LinkDown, auth: link.AuthenticationFailed | None, phase: link.Phase, forced_auth: bool
) -> str:
    """Why a call ended before it came up (``phase``: the last PPP phase it reached), naming the layer."""
    if auth is not None:
        return auth_failure(auth)
    reason = down.reason
    if "authentication" in reason and "offer" in reason:
        return f"PPP: {reason}; pysstp supports MS-CHAPv2, EAP-MS-CHAPv2, PAP and CHAP (see --auth)"
    if reason.endswith(ABORTED_AFTER_BINDING):
        return (
            f"SSTP: the server did not accept our crypto binding: {reason}; a TLS-intercepting proxy "
            "between here and the server causes this, and so does a server whose PPP side gives its SSTP "
            "side other keys than the login produced"
        )
    if "crypto binding" in reason:
        return f"SSTP: {reason}: a TLS-intercepting proxy between here and the server breaks SSTP"
    if reason.startswith(HTTP_FAILED) or reason == HTTP_TIMED_OUT:
        return f"HTTP: {reason}: {NOT_SSTP}"
    if reason.startswith(NOT_DELINEATED):
        return f"SSTP: the server accepted the SSTP request, then sent no SSTP ({reason}): {NOT_SSTP}"
    if phase is link.Phase.ESTABLISH and forced_auth:
        return (
            f"PPP: the server ended the call during LCP negotiation ({reason}); "
            "it probably does not offer the method chosen with --auth"
        )
    return f"call ended before it was up ({phase.value} phase): {reason}"


def summary(up: LinkUp, ifname: str, ipv6: IPv6Address | None = None) -> str:
    """The one line that says the tunnel works, e.g.
    'connected: 10.0.0.5 and fd77:77::5 via sstp0, DNS 10.0.0.1, MS-CHAPv2, SHA-256 binding'."""
    dns = ", ".join(map(str, up.dns_servers)) or "none"
    addresses = " and ".join(str(address) for address in (up.local_address, ipv6) if address is not None)
    return (
        f"connected: {addresses or 'no address'} via {ifname}, DNS {dns}, {method_name(up.auth_method)}, "
        f"{hash_name(up.hash_protocol)} binding"
    )


def call_ended(seconds: float, bytes_in: int, bytes_out: int) -> str:
    """The line when a call that was up ends, e.g.
    'call ended after 1:02:03: received 15.3 MiB, sent 1.1 MiB' (SSTP bytes over TLS, each way)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"call ended after {hours}:{minutes:02}:{secs:02}: received {si(bytes_in, 'B', binary=True)}, "
        f"sent {si(bytes_out, 'B', binary=True)}"
    )
