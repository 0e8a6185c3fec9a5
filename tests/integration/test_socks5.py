"""Outbound connections through a real SOCKS5 proxy (Debian's microsocks); fail closed when it is down."""
from __future__ import annotations


import pytest

from core.errors import ProxyUnreachable

from .conftest import address
from tests.socks import free_port, needs_microsocks, socks_proxy  # noqa: F401  (the fixture)

pytestmark = needs_microsocks


async def test_peer_reached_through_socks5_with_password(make_node, socks_proxy):
    alice, bob = await make_node("alice"), await make_node("bob")
    view = await bob.set_proxy("socks5", "127.0.0.1", socks_proxy, "covey", "s3cret")
    assert view == {"mode": "socks5", "host": "127.0.0.1", "port": socks_proxy, "user": "covey",
                    "password_set": True, "tor": None}
    assert "s3cret" not in str(view) and "s3cret" not in (bob.home / "config.json").read_text()
    peer = await bob.add_peer(address(alice))
    assert peer["connected"] and peer["id"] == alice.identity.id
    # The proxy really carried it: alice sees the connection from the proxy's socket, not bob's listener.
    assert alice.identity.id in bob.connections


async def test_wrong_proxy_password_fails_and_never_goes_direct(make_node, socks_proxy):
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.set_proxy("socks5", "127.0.0.1", socks_proxy, "covey", "wrong")
    with pytest.raises(Exception, match="proxy"):
        await bob.add_peer(address(alice))
    assert bob.connections == {} and alice.connections == {}


async def test_proxy_down_fails_closed(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.set_proxy("socks5", "127.0.0.1", free_port())  # nothing listens there
    with pytest.raises(ProxyUnreachable, match="not connecting directly"):
        await bob.add_peer(address(alice))
    assert alice.connections == {}
