"""Large MRU between two pysstp ends, and the fall-back to 1500 when the other end does not allow it."""

from __future__ import annotations

import pytest

from pysstp.link import MAX_IP_PACKET, LinkUp, ip_mtu
from pysstp.ppp.constants import DEFAULT_MRU, MAX_MRU

from helpers.conversation import SERVER_ADDRESS, Conversation, client_config, ipv4_packet, server_config


def up(conv: Conversation, side: str) -> LinkUp:
    (event,) = conv.events(side, LinkUp)
    assert isinstance(event, LinkUp)
    return event


def test_ip_mtu_is_bounded_by_the_sstp_length_field() -> None:
    assert ip_mtu(DEFAULT_MRU) == 1500
    assert ip_mtu(MAX_MRU) == MAX_IP_PACKET == 4087  # 4095 - SSTP header - ff 03 + protocol


def test_both_pysstp_ends_negotiate_the_largest_mru() -> None:
    conv = Conversation.make(
        client_config(mru=MAX_MRU, max_peer_mru=MAX_MRU), server_config(mru=MAX_MRU, max_peer_mru=MAX_MRU)
    )
    conv.start()
    assert up(conv, "client").mtu == up(conv, "server").mtu == MAX_IP_PACKET
    client_address = up(conv, "client").local_address
    assert client_address is not None
    payload = bytes(MAX_IP_PACKET - 20)
    to_server = ipv4_packet(client_address, SERVER_ADDRESS, payload)
    to_client = ipv4_packet(SERVER_ADDRESS, client_address, payload)
    assert conv.client.send_ip(to_server)
    assert conv.server.send_ip(to_client)
    assert not conv.client.send_ip(to_server + b"x")  # one byte over what an SSTP packet can carry
    conv.pump()
    assert conv.server_ip == [to_server]
    assert conv.client_ip == [to_client]


BIG = {"mru": MAX_MRU, "max_peer_mru": MAX_MRU}


@pytest.mark.parametrize(
    ("client", "server", "client_mtu", "server_mtu"),
    [
        # A server left at the default Naks the client's 4091 down to 1500 (as it does Windows').
        (BIG, {}, DEFAULT_MRU, DEFAULT_MRU),
        # A client left at the default Naks the server's 4091 down to 1500.
        ({}, BIG, DEFAULT_MRU, DEFAULT_MRU),
        # A server that asks for 4091 but grants only 1500: large frames flow to the server only.
        (BIG, {"mru": MAX_MRU}, MAX_IP_PACKET, DEFAULT_MRU),
    ],
)
def test_an_end_that_does_not_allow_it_falls_back(
    client: dict[str, int], server: dict[str, int], client_mtu: int, server_mtu: int
) -> None:
    conv = Conversation.make(client_config(**client), server_config(**server))
    conv.start()
    assert (up(conv, "client").mtu, up(conv, "server").mtu) == (client_mtu, server_mtu)
