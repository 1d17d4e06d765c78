"""What an Access-Accept, -Reject or -Challenge says (RFC 2865 §4.2-4.4, RFC 2548, RFC 3162, RFC 3579).

Rate limits come from WISPr-Bandwidth-Max-Up and -Max-Down (vendor 14122, bit/s; 0 = unlimited), the
pair FreeRADIUS ships a dictionary for and hotspot RADIUS servers already send.

The reply has already been checked (:mod:`pysstp.aaa.radius.client`); here its attributes become the
text for the peer, the keys for the crypto binding and the :class:`~pysstp.aaa.backend.Authorization`.
A malformed attribute is ignored with a log line, like an unknown one: it never fails the login by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Any, TypeVar

from pyrad import packet as radius_packet

from pysstp.aaa.backend import Authorization, IpNetwork, pushed_network
from pysstp.aaa.radius.eap_message import join_eap_message
from pysstp.dhcp import domain_name
from pysstp.ppp.auth.keys import MASTER_KEY_SIZE, hlak_from_key_material
from pysstp.ppp.constants import HLAK_SIZE

log = logging.getLogger("pysstp.radius")

POOL_ADDRESS = IPv4Address("255.255.255.254")
"""Framed-IP-Address meaning "assign one from the pool" (RFC 2865 §5.8)."""
PEER_CHOOSES_ADDRESS = IPv4Address("255.255.255.255")
"""Framed-IP-Address meaning "let the user choose"; pysstp treats it as the pool too."""

_HONOURED = frozenset(
    {
        "Framed-IP-Address",
        "Framed-Pool",
        "Framed-Route",
        "Framed-IPv6-Route",
        "Framed-IPv6-Prefix",
        "Route-IPv6-Information",
        "Cisco-AVPair",
        "Session-Timeout",
        "Idle-Timeout",
        "Acct-Interim-Interval",
        "Class",
        "MS-Primary-DNS-Server",
        "MS-Secondary-DNS-Server",
        "Framed-MTU",
        "Reply-Message",
        "WISPr-Bandwidth-Max-Up",
        "WISPr-Bandwidth-Max-Down",
        # What the authentication itself uses:
        "Message-Authenticator",
        "EAP-Message",
        "State",
        "MS-CHAP2-Success",
        "MS-CHAP-Error",
        "MS-MPPE-Send-Key",
        "MS-MPPE-Recv-Key",
        "User-Name",
        "Proxy-State",
        # Said by every server that keeps the MS-CHAP defaults, and meaningless without MPPE:
        "MS-MPPE-Encryption-Policy",
        "MS-MPPE-Encryption-Types",
        # Framed-User and PPP are the only service we give anyway.
        "Service-Type",
        "Framed-Protocol",
    }
)

PUSH_ROUTE_PAIR = "pysstp:push-route="
"""Cisco-AVPair prefix of an IPv4 or IPv6 network the client routes into the tunnel (docs/radius.md)."""
DOMAIN_PAIR = "pysstp:domain="
"""Cisco-AVPair prefix of the DNS suffix pushed to the client (docs/radius.md)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AccessReply:
    """A genuine reply to one Access-Request, from the server named ``server``."""

    packet: radius_packet.Packet
    server: str

    @property
    def accepted(self) -> bool:
        """Access-Accept."""
        return bool(self.packet.code == radius_packet.AccessAccept)

    @property
    def challenged(self) -> bool:
        """Access-Challenge: the EAP exchange goes on."""
        return bool(self.packet.code == radius_packet.AccessChallenge)

    def _values(self, name: str) -> list[Any]:
        try:
            return list(self.packet.get(name, []))
        except (radius_packet.PacketError, ValueError, KeyError, UnicodeDecodeError) as error:
            log.warning("RADIUS server %s: ignored a malformed %s: %s", self.server, name, error)
            return []

    def _first(self, name: str, convert: Callable[[Any], T]) -> T | None:
        for value in self._values(name):
            try:
                return convert(value)
            except (ValueError, TypeError) as error:
                log.warning("RADIUS server %s: ignored %s %r: %s", self.server, name, value, error)
        return None

    @property
    def reply_message(self) -> str:
        """Reply-Message (RFC 2865 §5.18), the pieces joined with spaces."""
        return " ".join(_text(value) for value in self._values("Reply-Message"))

    @property
    def user_name(self) -> str | None:
        """User-Name of an Access-Accept (RFC 2865 §5.1): who logged in, where the request's name was an
        outer identity (PEAP's "anonymous"); accounting and the session go by it."""
        return self._first("User-Name", _text)

    @property
    def state(self) -> bytes | None:
        """State, to be sent back with the next Access-Request (RFC 2865 §5.24)."""
        return self._first("State", bytes)

    @property
    def eap_message(self) -> bytes | None:
        """The EAP packet in the EAP-Message attributes (RFC 3579 §3.1), or ``None``."""
        values = self._values("EAP-Message")
        return join_eap_message(values) if values else None

    @property
    def mschap2_success(self) -> str | None:
        """MS-CHAP2-Success without its Ident byte: the ``S=...`` text for the peer (RFC 2548 §2.3.3)."""
        return self._first("MS-CHAP2-Success", _text_after_ident)

    @property
    def mschap_error(self) -> str | None:
        """MS-CHAP-Error without its Ident byte: ``E=691 R=0 ...`` for the peer (RFC 2548 §2.1.5)."""
        return self._first("MS-CHAP-Error", _text_after_ident)

    def key_material(self) -> bytes | None:
        """MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key (salt-decrypted, RFC 2548 §2.4.2-2.4.3), or ``None`` when
        they are missing or too short to make an HLAK.

        The server's receive key is the client's send key, so this is the local MS-CHAPv2 path's
        HLAK (:func:`pysstp.ppp.auth.keys.mschapv2_hlak`); for EAP, the keys are MSK[0:32] and MSK[32:64]
        (RFC 2716 §3.5; FreeRADIUS and hostapd send them so), so the first 32 bytes are MS-SSTP
        3.2.5.2.4's HLAK.
        """
        receive = self._first("MS-MPPE-Recv-Key", bytes)
        send = self._first("MS-MPPE-Send-Key", bytes)
        if receive is None or send is None or len(receive) < MASTER_KEY_SIZE or len(send) < MASTER_KEY_SIZE:
            return None
        material = receive + send
        return material if len(material) >= HLAK_SIZE else None

    def hlak(self) -> bytes | None:
        """The 32-byte HLAK from :meth:`key_material`, or ``None`` without keys."""
        material = self.key_material()
        return None if material is None else hlak_from_key_material(material)

    def authorization(self) -> Authorization:
        """What an Access-Accept decides about the session; unknown attributes are logged once."""
        # pyrad's keys() gives names (codes for attributes outside the dictionary); iterating gives codes.
        names = self.packet.keys()
        unknown = sorted(str(key) for key in names if not (isinstance(key, str) and key in _HONOURED))
        if unknown:
            log.debug("RADIUS server %s: ignored attributes %s", self.server, ", ".join(unknown))
        address = self._first("Framed-IP-Address", IPv4Address)
        if address in (POOL_ADDRESS, PEER_CHOOSES_ADDRESS):
            address = None
        routes: list[IpNetwork] = []
        for name in ("Framed-Route", "Framed-IPv6-Route"):
            for value in self._values(name):
                route = _route(_text(value))
                if route is None:
                    log.warning("RADIUS server %s: ignored %s %r", self.server, name, value)
                else:
                    routes.append(route)
        push_routes, domain = self._pushed()
        dns = [
            server
            for name in ("MS-Primary-DNS-Server", "MS-Secondary-DNS-Server")
            if (server := self._first(name, IPv4Address)) is not None
        ]
        return Authorization(
            address=address,
            pool=self._first("Framed-Pool", _text),
            routes=tuple(routes),
            ipv6_prefix=self._first("Framed-IPv6-Prefix", IPv6Network),
            session_timeout=self._first("Session-Timeout", float),
            idle_timeout=self._first("Idle-Timeout", float),
            interim_interval=self._first("Acct-Interim-Interval", float),
            classes=tuple(bytes(value) for value in self._values("Class")),
            dns=tuple(dns),
            push_routes=push_routes,
            domain=domain,
            mtu=self._first("Framed-MTU", int),
            reply_message=self.reply_message,
            # WISPr's names are the user's view: up is what the client sends.
            rate_in=self._first("WISPr-Bandwidth-Max-Up", int),
            rate_out=self._first("WISPr-Bandwidth-Max-Down", int),
        )

    def _pushed(self) -> tuple[tuple[IpNetwork, ...], str]:
        """Pushed routes (Cisco-AVPair ``pysstp:push-route=``, Route-IPv6-Information of RFC 6911 §3.3)
        and the domain (Cisco-AVPair ``pysstp:domain=``); other AV-pairs are not ours and are skipped."""
        routes: list[IpNetwork] = []
        domain = ""
        for value in self._values("Cisco-AVPair"):
            pair = _text(value)
            try:
                if pair.startswith(PUSH_ROUTE_PAIR):
                    routes.append(pushed_network(pair.removeprefix(PUSH_ROUTE_PAIR)))
                elif pair.startswith(DOMAIN_PAIR):
                    domain = domain_name(pair.removeprefix(DOMAIN_PAIR))
            except ValueError as error:
                log.warning("RADIUS server %s: ignored Cisco-AVPair %r: %s", self.server, pair, error)
        for value in self._values("Route-IPv6-Information"):
            try:
                routes.append(pushed_network(_text(value)))
            except ValueError as error:
                log.warning("RADIUS server %s: ignored Route-IPv6-Information: %s", self.server, error)
        return tuple(routes), domain


def _text(value: str | bytes) -> str:
    """pyrad gives strings that are not UTF-8 as bytes."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _text_after_ident(value: bytes) -> str:
    if len(value) < 2:
        raise ValueError("shorter than its Ident byte and text")
    return _text(value[1:])


def _route(value: str) -> IpNetwork | None:
    """The destination of a Framed-Route (RFC 2865 §5.22) or Framed-IPv6-Route (RFC 3162 §2.5):
    ``prefix[/length] [gateway [metrics]]``; a prefix without length is one host."""
    words = value.split()
    if not words:
        return None
    try:
        network = ip_network(words[0], strict=False)
    except ValueError:
        return None
    return network if isinstance(network, IPv4Network | IPv6Network) else None
