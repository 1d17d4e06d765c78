"""What one call costs in memory: the per-call objects of the core carry no ``__dict__``, and every call
of a server shares its certificate hashes (docs/architecture.md, "Memory per session")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from pysstp.link import ServerLink
from pysstp.ppp.constants import AuthMethod
from pysstp.server.session import ServerConnection

from helpers.conversation import Conversation, client_config, pool_network_for_user, server_config

if TYPE_CHECKING:
    from pysstp.server.app import SstpServerApp


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_the_objects_of_an_established_call_have_no_instance_dict(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    conv.start()
    assert conv.server.is_up and conv.client.is_up
    for link in (conv.server, conv.client):
        session = link.session
        objects = [link, link.sstp, session, session.lcp, session.ipcp]
        for held in objects:
            assert held is not None
            assert not hasattr(held, "__dict__"), type(held).__name__


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_an_established_call_keeps_no_authenticator(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    conv.start()
    assert conv.server.is_up and conv.client.is_up
    for link in (conv.server, conv.client):
        assert link.session.auth is None
        assert link.session.auth_method is method


def test_every_call_of_a_server_shares_one_mapping_of_certificate_hashes() -> None:
    config = server_config()
    first, second = (ServerLink(config, network_for_user=pool_network_for_user()) for _ in range(2))
    assert first.sstp._cert_hashes is second.sstp._cert_hashes is config.certificate_hashes


async def test_a_server_call_and_what_status_shows_of_it_have_no_instance_dict() -> None:
    server = SimpleNamespace(
        link_config=server_config(),
        datapath=SimpleNamespace(deliver=lambda packet: None),
        on_event=lambda connection, event: None,
        ipv6_prefix=None,
    )
    connection = ServerConnection(cast("SstpServerApp", server))
    for held in (connection, connection.info):
        assert not hasattr(held, "__dict__"), type(held).__name__
    assert connection.authorization is ServerConnection(cast("SstpServerApp", server)).authorization
