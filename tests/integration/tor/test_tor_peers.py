"""Tor and the peer book (issue 6, 8 and 12c): `proxy set --tor --tor-config`, and a peer that
dials in through tor (from tor's 127.0.0.1) never replaces its pinned .onion address."""
from __future__ import annotations

import pytest

from core.app.commands import load_commands
from core.node import Node

from ..conftest import wait_until
from .test_tor import add_peer_through_tor

pytestmark = [pytest.mark.tor, pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
              pytest.mark.skipif(not hasattr(Node, "use_tor"), reason="Node.use_tor is not wired in yet")]


async def test_an_inbound_peer_over_tor_keeps_its_pinned_onion(make_node, network_torrc, running_tor):
    alice = await make_node("alice", connect_timeout=60.0)
    view = await load_commands()["proxy.set"].run(alice, tor=True, tor_config=str(network_torrc))
    assert view["tor"]["owned"] and alice.settings.tor_config == str(network_torrc)
    bob = await make_node("bob", connect_timeout=60.0)
    await bob.use_tor(f"127.0.0.1:{running_tor.control_port}")
    await wait_until(lambda: alice.info()["onion"] and bob.info()["onion"], timeout=120)
    bob_onion = bob.info()["onion"]

    await alice.add_peer(bob_onion, key=bob.identity.id, name="bob")   # pinned, reached via tor
    await add_peer_through_tor(bob, alice.info()["onion"])               # bob dials alice too
    await wait_until(lambda: bob.identity.id in alice.connections, timeout=60)
    assert alice.peers.get(bob.identity.id).address == bob_onion
    inbound = [c for c in (alice.connections.get(bob.identity.id),) if c is not None and not c.initiator]
    assert all(c.listen_port == 0 for c in inbound)   # over tor the hello announces no port
    assert not any(r.address and r.address.startswith("127.0.0.1") for r in alice.peers.list())
