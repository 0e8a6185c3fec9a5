"""Outbound connections through a real SOCKS5 proxy (Debian's microsocks); fail closed when it is down."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from core.errors import ProxyUnreachable

from .conftest import address

pytestmark = pytest.mark.skipif(shutil.which("microsocks") is None,
                                reason="microsocks not installed (make test installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def socks_proxy():
    port = free_port()
    proc = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", "covey", "-P", "s3cret"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


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
