"""Finding 7: idle sockets cannot hold the handshake slots or the HTTP server.

Attackers connect from other loopback addresses (127.0.0.2-5: Linux routes all of
127/8 to lo) so that an honest node on 127.0.0.1 is a different address."""
from __future__ import annotations

import asyncio
import os
import resource
import socket

import aiohttp
import pytest

from core.net import wire

from .conftest import address, wait_until
from .test_bad_input import still_serves


async def idle_websockets(target: str, n: int, source: str = "127.0.0.1") -> tuple[aiohttp.ClientSession, list]:
    """``n`` upgraded WebSockets that never send a hello (503s are not counted)."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0), limit=0))
    opened = []
    for _ in range(n):
        try:
            opened.append(await session.ws_connect(f"http://{target}{wire.WS_PATH}"))
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 503
    return session, opened


async def test_a_websocket_that_never_says_hello_is_closed_at_the_hello_deadline(make_node):
    alice = await make_node("alice", hello_timeout=0.5, connect_timeout=60)
    session, (ws,) = await idle_websockets(address(alice), 1)
    try:
        frame = await asyncio.wait_for(ws.receive(), 20)
        assert frame.type == aiohttp.WSMsgType.CLOSE and "no hello within 0.5 s" in frame.extra
    finally:
        await session.close()


async def test_idle_sockets_from_four_addresses_do_not_lock_out_an_honest_peer(make_node):
    alice = await make_node("alice", hello_timeout=30, connect_timeout=60)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    sessions, held = [], []
    try:
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
            session, opened = await idle_websockets(address(alice), 16, source)
            sessions.append(session)
            held += opened
            assert len(opened) == 16
        assert alice.transport._in_flight == alice.settings.max_handshakes == 64
        await asyncio.sleep(1.2)  # the held sockets have now stalled long enough to be evicted
        await bob.add_peer(address(alice))
        await still_serves(alice, bob)
        assert alice.transport.evicted_handshakes >= 1
        assert alice.transport._in_flight <= alice.settings.max_handshakes
    finally:
        for session in sessions:
            await session.close()


async def test_inbound_through_tor_has_its_own_handshake_budget(make_node):
    with socket.socket() as s:  # a SOCKS port nobody listens on: no tor is started
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    alice = await make_node("alice", proxy_mode="tor", proxy_host="127.0.0.1", proxy_port=unused,
                            tor_handshakes=24, max_handshakes=8, hello_timeout=30, connect_timeout=60)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    session, opened = await idle_websockets(address(alice), 20)  # from 127.0.0.1: the onion service
    direct, held = await idle_websockets(address(alice), 8, "127.0.0.2")
    try:
        assert len(opened) == 20  # more than one address may hold (16), in the tor pool of 24
        assert len(held) == 8     # direct peers still have their own pool
        await asyncio.sleep(1.2)
        await bob.add_peer(address(alice))  # and an honest onion peer evicts a stalled one
        await still_serves(alice, bob)
    finally:
        await session.close()
        await direct.close()


async def test_a_half_sent_http_request_is_timed_out(make_node):
    alice = await make_node("alice", http_idle_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", alice.transport.port)
    try:
        writer.write(b"GET /covey/v1 HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 20) == b""  # closed by the node
    finally:
        writer.close()


async def test_inbound_sockets_are_capped(make_node):
    alice = await make_node("alice", max_connections=10)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    await bob.add_peer(address(alice))  # one inbound socket: bob's connection
    socks = [await asyncio.open_connection("127.0.0.1", alice.transport.port) for _ in range(15)]
    try:
        await wait_until(lambda: alice.transport.refused_connections >= 6, 10)
        assert len(alice.transport._runner.server.connections) <= 10
        await still_serves(alice, bob)  # established peers keep working
    finally:
        for _, writer in socks:
            writer.close()


@pytest.fixture
def low_fd_limit():
    """A low soft limit (256, or a little above what this test process has open already:
    a long test run holds files of its own), restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = max(256, len(os.listdir("/proc/self/fd")) + 64)
    if hard != resource.RLIM_INFINITY and hard <= low:
        pytest.skip("the hard open-file limit is already low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    yield low
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_the_open_file_limit_is_raised_at_start(make_node, low_fd_limit):
    await make_node("alice")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == (hard if hard != resource.RLIM_INFINITY else 1 << 20) > low_fd_limit
