"""Messages arrive complete and in send order, however they are batched or chunked."""
from __future__ import annotations

import asyncio

import aiohttp

from core.net import wire

from .conftest import address, wait_until
from .test_bad_input import RawPeer, session  # noqa: F401  (fixture)


async def connected(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    got: list[int] = []
    alice.on_message("seq", lambda peer, body: got.append(body["n"]))
    await bob.add_peer(address(alice))
    return alice, bob, got


async def test_a_burst_of_small_messages_arrives_in_order_in_few_frames(make_node):
    alice, bob, got = await connected(make_node)
    frames_before = bob.connections[alice.identity.id].channel._sn
    for n in range(5000):
        await bob.send(alice.identity.id, "seq", {"n": n, "pad": b"x" * 80})
    await wait_until(lambda: len(got) == 5000)
    assert got == list(range(5000))
    frames = bob.connections[alice.identity.id].channel._sn - frames_before
    assert frames < 500  # batched: many messages per sealed frame


async def test_concurrent_senders_mixing_small_and_chunked_messages_keep_each_senders_order(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    received: list[tuple[int, int, int]] = []
    alice.on_message("mix", lambda peer, body: received.append((body["s"], body["n"], len(body["blob"]))))
    await bob.add_peer(address(alice))
    alice.trust(bob.identity.id, "external")  # a stranger may not send alice 3 MB messages

    async def sender(s: int):
        for n in range(60):
            size = 3_000_000 if n % 20 == 7 else 50  # a few multi-frame messages among small ones
            await bob.send(alice.identity.id, "mix", {"s": s, "n": n, "blob": b"z" * size})

    await asyncio.gather(*(sender(s) for s in range(4)))
    await wait_until(lambda: len(received) == 240, 30)
    for s in range(4):
        mine = [(n, size) for (who, n, size) in received if who == s]
        assert [n for n, _ in mine] == list(range(60))
        assert all(size == (3_000_000 if n % 20 == 7 else 50) for n, size in mine)


async def test_request_replies_still_match_under_batching(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    alice.on_message("double", lambda peer, body: {"v": body["v"] * 2})
    await bob.add_peer(address(alice))
    replies = await asyncio.gather(*(bob.request(alice.identity.id, "double", {"v": i}) for i in range(500)))
    assert [r["v"] for r in replies] == [2 * i for i in range(500)]


async def test_a_malformed_batch_frame_closes_the_connection(make_node, session):  # noqa: F811
    alice = await make_node("alice")
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    bogus = bytes([wire.FRAME_BATCH]) + (1000).to_bytes(4, "big") + b"short"
    await ws.send_bytes(raw.channel.seal(bogus))
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and "batch frame" in closing.extra
