"""What one call costs in memory: the per-call objects of the core carry no ``__dict__``, and every call
of a server shares its certificate hashes (docs/architecture.md, "Memory per session")."""

from __future__ import annotations

import pytest

from pysstp.link import ServerLink
from pysstp.ppp.constants import AuthMethod

from helpers.conversation import Conversation, client_config, pool_network_for_user, server_config


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_the_objects_of_an_established_call_have_no_instance_dict(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    conv.start()
    assert conv.server.is_up and conv.client.is_up
    for link in (conv.server, conv.client):
        session = link.session
        objects = [link, link.sstp, session, session.lcp, session.ipcp, session.auth]
        for held in objects:
            assert held is not None
            assert not hasattr(held, "__dict__"), type(held).__name__


def test_every_call_of_a_server_shares_one_mapping_of_certificate_hashes() -> None:
    config = server_config()
    first, second = (ServerLink(config, network_for_user=pool_network_for_user()) for _ in range(2))
    assert first.sstp._cert_hashes is second.sstp._cert_hashes is config.certificate_hashes
