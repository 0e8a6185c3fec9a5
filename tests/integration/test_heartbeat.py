"""Liveness: PeerConnection's own heartbeat (the sockets run without aiohttp's heartbeat and autoping)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from core.net.connection import CLOSE_SILENT

from .conftest import address, wait_until
from .test_bad_input import RawPeer

HEARTBEAT = 0.3


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def test_a_silent_peer_is_pinged_then_closed(make_node, session):
    alice = await make_node("alice", heartbeat=HEARTBEAT)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake(autoping=False)   # reads frames but never answers a PING
    await wait_until(lambda: raw.identity.id in alice.connections)
    frames = []
    while True:
        frame = await asyncio.wait_for(ws.receive(), 20 * HEARTBEAT)
        frames.append(frame.type)
        if frame.type is not aiohttp.WSMsgType.PING:
            break
    assert frames[0] is aiohttp.WSMsgType.PING
    assert frames[-1] is aiohttp.WSMsgType.CLOSE and frame.data == CLOSE_SILENT, frame
    assert "heartbeat" in frame.extra
    await wait_until(lambda: raw.identity.id not in alice.connections)


async def test_a_peer_that_answers_pings_stays_connected(make_node, session):
    alice = await make_node("alice", heartbeat=HEARTBEAT)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()                 # aiohttp's autoping answers each PING inside receive()
    reader = asyncio.ensure_future(ws.receive())
    # ten heartbeats of silence from our side: only PINGs come (autoping answers and swallows
    # them, so receive() returns nothing), and the connection stays up
    done, _ = await asyncio.wait({reader}, timeout=10 * HEARTBEAT)
    assert not done, reader.result()
    conn = alice.connections[raw.identity.id]
    assert not conn.closed and conn._received >= 2   # the PONGs it got back
    reader.cancel()


async def test_idle_nodes_keep_their_link_and_answer_pings_themselves(make_node):
    alice = await make_node("alice", heartbeat=HEARTBEAT)
    bob = await make_node("bob", heartbeat=HEARTBEAT)
    alice.on_message("echo", lambda peer, body: body)
    await bob.add_peer(address(alice))
    link = alice.connections[bob.identity.id]
    await wait_until(lambda: link._received >= 3 and bob.connections[alice.identity.id]._received >= 3)
    assert not link.closed and alice.connections[bob.identity.id] is link
    assert await bob.request(alice.identity.id, "echo", {"ok": 1}, timeout=5) == {"ok": 1}
