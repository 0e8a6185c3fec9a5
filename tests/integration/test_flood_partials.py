"""Finding 6: unfinished chunked messages share one node-wide budget, UNKNOWN peers get a far
smaller message cap, an unfinished message times out, and UNKNOWN connections are capped."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from core.net import wire

from .conftest import address, wait_until
from .test_bad_input import RawPeer, session, still_serves  # noqa: F401  (fixture)

PART = 60 << 10


async def closing(ws, timeout: float = 10.0):
    """The close frame the node sends (fails if it does not come). Messages the node sends first
    are skipped: a trusted peer gets the node's own requests on connect (the knowledge have exchange)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await asyncio.wait_for(ws.receive(), max(0.01, deadline - loop.time()))
        if frame.type != aiohttp.WSMsgType.BINARY:
            break
    assert frame.type == aiohttp.WSMsgType.CLOSE, frame
    return frame.extra


async def trusted_raw(alice, session, tier: str = "core") -> RawPeer:  # noqa: F811
    raw = RawPeer(session, address(alice))
    alice.peers.add_or_update(raw.identity.id, name="raw", source="manual")
    alice.peers.set_tier(raw.identity.id, tier)
    await raw.handshake()
    return raw


async def send_parts(raw: RawPeer, n: int) -> None:
    for _ in range(n):
        await raw.ws.send_bytes(raw.channel.seal(b"\x01" + b"p" * PART))


async def test_an_unknown_peer_may_not_send_a_large_message(make_node, session):  # noqa: F811
    alice = await make_node("alice", max_frame=64 << 10, unknown_max_message=256 << 10)
    raw = RawPeer(session, address(alice))
    await raw.handshake()
    await send_parts(raw, 5)  # 300 KiB, unfinished
    assert "exceeds the limit of 262144" in await closing(raw.ws)
    await wait_until(lambda: alice.transport.budget.used == 0, 5)


async def test_unfinished_messages_share_one_budget_for_the_whole_node(make_node, session):  # noqa: F811
    alice = await make_node("alice", max_frame=64 << 10, partial_budget=3 << 20)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    await bob.add_peer(address(alice))
    holders = [await trusted_raw(alice, session) for _ in range(3)]
    await send_parts(holders[0], 20)   # 1.2 MB each, never finished
    await send_parts(holders[1], 20)
    await wait_until(lambda: alice.transport.budget.used == 40 * PART, 10)
    await send_parts(holders[2], 20)   # would pass the 3 MiB budget
    assert "too many unfinished messages" in await closing(holders[2].ws)
    assert alice.transport.budget.used == 40 * PART <= alice.settings.partial_budget
    await still_serves(alice, bob)
    for raw in holders[:2]:
        await raw.ws.close()
    await wait_until(lambda: alice.transport.budget.used == 0, 10)


async def test_unknown_peers_hold_only_their_share_of_the_budget(make_node, session):  # noqa: F811
    alice = await make_node("alice", max_frame=64 << 10, unknown_partial_budget=1 << 20,
                            unknown_max_message=1 << 20)
    first, second = RawPeer(session, address(alice)), RawPeer(session, address(alice))
    await first.handshake()
    await second.handshake()
    await send_parts(first, 10)
    await send_parts(second, 10)  # together past the 1 MiB share of UNKNOWN peers
    assert "unknown peers" in await closing(second.ws)
    known = await trusted_raw(alice, session)
    await send_parts(known, 30)  # a known peer still has room for 1.8 MB
    await wait_until(lambda: alice.transport.budget.used == 40 * PART, 10)


async def test_an_unfinished_message_times_out(make_node, session):  # noqa: F811
    alice = await make_node("alice", max_frame=64 << 10, partial_timeout=0.5)
    raw = await trusted_raw(alice, session)
    await send_parts(raw, 3)
    assert "unfinished message took longer than 0.5 s" in await closing(raw.ws)
    await wait_until(lambda: alice.transport.budget.used == 0, 5)


async def test_connections_with_unknown_peers_are_capped_node_wide(make_node, session):  # noqa: F811
    alice = await make_node("alice", max_unknown_connections=3)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    held = [RawPeer(session, address(alice)) for _ in range(3)]
    for raw in held:
        await raw.handshake()
    await wait_until(lambda: len(alice.connections) == 3, 5)
    refused = RawPeer(session, address(alice))
    with pytest.raises(AssertionError):  # an error message instead of "ready"
        await refused.handshake()
    assert refused.identity.id not in alice.connections
    alice.peers.add_or_update(bob.identity.id, name="bob", source="manual")
    alice.peers.set_tier(bob.identity.id, "external")
    await bob.add_peer(address(alice))  # a known peer is not held back by the cap
    await still_serves(alice, bob)
