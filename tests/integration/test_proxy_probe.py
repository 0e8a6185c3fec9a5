"""node.route.test_proxy: a real SOCKS5 proxy (microsocks) is tried and the outcome worded."""
from __future__ import annotations


import pytest

from core.errors import BadRequest, ProxyUnreachable

from .conftest import address
from tests.socks import free_port, needs_microsocks, socks_proxy  # noqa: F401  (the fixture)

pytestmark = needs_microsocks


async def test_probe_reaches_own_listener_and_a_peer(make_node, socks_proxy):  # noqa: F811
    alice, bob = await make_node("alice"), await make_node("bob")
    result = await bob.route.test_proxy("127.0.0.1", socks_proxy, "covey", "s3cret")
    assert result == {"ok": True, "proxy": f"127.0.0.1:{socks_proxy}",
                      "target": f"127.0.0.1:{bob.transport.port}"}
    result = await bob.route.test_proxy("127.0.0.1", socks_proxy, "covey", "s3cret", target=address(alice))
    assert result["target"] == address(alice)
    assert bob.proxy_view()["mode"] == "off"   # a test changes nothing


async def test_probe_uses_saved_settings_and_password(make_node, socks_proxy):  # noqa: F811
    bob = await make_node("bob")
    await bob.set_proxy("socks5", "127.0.0.1", socks_proxy, "covey", "s3cret")
    assert (await bob.route.test_proxy())["ok"]


async def test_probe_says_why(make_node, socks_proxy):  # noqa: F811
    bob = await make_node("bob")
    with pytest.raises(ProxyUnreachable, match="refused the user name or password"):
        await bob.route.test_proxy("127.0.0.1", socks_proxy, "covey", "wrong")
    with pytest.raises(ProxyUnreachable, match="wants a user name and password"):
        await bob.route.test_proxy("127.0.0.1", socks_proxy, "", "")
    dead = free_port()
    with pytest.raises(ProxyUnreachable, match=f"127.0.0.1:{dead} cannot be used: .*refused"):
        await bob.route.test_proxy("127.0.0.1", dead, "", "")
    with pytest.raises(ProxyUnreachable, match="could not reach 127.0.0.1:"):
        await bob.route.test_proxy("127.0.0.1", socks_proxy, "covey", "s3cret", target=f"127.0.0.1:{free_port()}")
    with pytest.raises(BadRequest, match="host and port"):
        await bob.route.test_proxy()
