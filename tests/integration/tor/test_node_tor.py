"""A Node that uses Tor through its own TorController: `covey proxy set --tor` end to end.

Runs once ``Node.use_tor`` is wired in (core/node.py); inside a loopback-only
namespace like the rest of this directory.
"""
from __future__ import annotations


import psutil
import pytest

from core import events as ev
from core.errors import ProxyUnreachable
from core.node import Node
from core.net.tor import TorError

from ..conftest import address, wait_until
from .test_tor import add_peer_through_tor

pytestmark = [pytest.mark.tor, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
              pytest.mark.skipif(not hasattr(Node, "use_tor"), reason="Node.use_tor is not wired in yet")]


def tor_processes_of(home) -> list[psutil.Process]:
    torrc = str(home / "tor" / "torrc")
    return [p for p in psutil.process_iter(["cmdline"]) if torrc in (p.info["cmdline"] or [])]


async def test_nodes_meet_by_onion_address_with_their_own_tors(make_node, network_torrc, running_tor):
    alice = await make_node("alice", tor_config=str(network_torrc))
    statuses = []
    alice.events.on(ev.TOR_STATUS, lambda e: statuses.append(e.data))
    view = await alice.use_tor()
    assert view["mode"] == "tor" and view["tor"]["owned"] and view["tor"]["running"]
    await wait_until(lambda: alice.info()["onion"] is not None, timeout=90)
    onion = alice.info()["onion"]
    assert onion.endswith(".onion:8102") and alice.proxy_view()["tor"]["bootstrap"] == 100
    assert any(s.get("bootstrap") == 100 for s in statuses)

    bob = await make_node("bob", connect_timeout=60.0)
    view = await bob.use_tor(f"127.0.0.1:{running_tor.control_port}")
    assert not view["tor"]["owned"] and view["port"] == running_tor.socks_port
    await bob.tor.wait_bootstrapped(60)
    peer = await add_peer_through_tor(bob, onion)
    assert peer["connected"] and peer["id"] == alice.identity.id
    assert await bob.request(alice.identity.id, "ping", {}) == {"pong": True}

    await alice.stop()
    assert tor_processes_of(alice.home) == []


async def test_a_node_whose_tor_cannot_start_never_dials_direct(make_node):
    alice = await make_node("alice")
    bob = await make_node("bob")  # no tor_config, no public opt-in: its own tor must not start
    with pytest.raises(TorError, match="refusing to start tor"):
        await bob.use_tor()
    assert bob.proxy_view()["tor"]["running"] is False
    with pytest.raises(ProxyUnreachable, match="tor is not running.*fail closed"):
        await bob.add_peer(address(alice))
    assert bob.connections == {} and alice.connections == {}
    assert tor_processes_of(bob.home) == []


async def test_a_node_whose_tor_is_still_bootstrapping_never_dials_direct(make_node, tor_network, tmp_path):
    alice = await make_node("alice")
    stuck = tor_network.write_unreachable_config(tmp_path / "unreachable.torrc")
    bob = await make_node("bob", tor_config=str(stuck))
    await bob.use_tor()
    with pytest.raises(ProxyUnreachable, match="still bootstrapping.*fail closed"):
        await bob.add_peer(address(alice))
    assert bob.connections == {} and alice.connections == {}
