"""Finding 3: a reply counts only on the connection its request went out on, and ids are unpredictable."""
from __future__ import annotations

import asyncio

from core.net import wire

from .conftest import address, wait_until
from .test_bad_input import RawPeer, session  # noqa: F401  (fixture)


async def three(make_node, session):  # noqa: F811
    """bob asks carol (slowly answered); a raw UNKNOWN peer is connected to bob too."""
    bob, carol = await make_node("bob"), await make_node("carol")
    release = asyncio.Event()

    async def slow(peer, body):
        await release.wait()
        return {"real": True}

    carol.on_message("slow", slow)
    await bob.add_peer(address(carol))
    raw = RawPeer(session, address(bob))
    await raw.handshake()
    await wait_until(lambda: raw.identity.id in bob.connections, 5)
    return bob, carol, raw, release


async def test_a_forged_reply_with_the_exact_id_from_another_connection_does_not_win(make_node, session):  # noqa: F811
    bob, carol, raw, release = await three(make_node, session)
    asking = asyncio.ensure_future(bob.request(carol.identity.id, "slow", {}, timeout=20))
    await wait_until(lambda: len(bob._pending) == 1, 5)
    (msg_id,) = bob._pending  # the attacker knows the id exactly (worst case)
    await raw.ws.send_bytes(raw.seal(wire.Message("slow.reply", {"real": False}, reply_to=msg_id)))
    await raw.ws.send_bytes(raw.seal(wire.Message("error", {"code": "timeout", "message": "forged"},
                                                  reply_to=msg_id)))
    # the forged frames were read (a ping sent after them is answered), the request still waits
    await raw.ws.send_bytes(raw.seal(wire.Message("ping", {}, id=99)))
    assert (await raw.receive_message()).body == {"pong": True}
    assert not asking.done()
    release.set()
    assert await asking == {"real": True}


async def test_message_ids_are_not_predictable(make_node, session):  # noqa: F811
    bob, carol, raw, release = await three(make_node, session)
    seen = []
    for n in range(20):  # the ids of bob's replies come from the same source as his request ids
        await raw.ws.send_bytes(raw.seal(wire.Message("ping", {}, id=n + 1)))
        seen.append((await raw.receive_message()).id)
    steps = {b - a for a, b in zip(seen, seen[1:])}
    assert len(steps) > 10, steps  # not a counter
    assert all(0 < i < 1 << 63 for i in seen)
    # and guessing around the ids just seen does not answer a request to carol
    asking = asyncio.ensure_future(bob.request(carol.identity.id, "slow", {}, timeout=20))
    await wait_until(lambda: len(bob._pending) == 1, 5)
    for guess in range(seen[-1] - 100, seen[-1] + 400):
        await raw.ws.send_bytes(raw.seal(wire.Message("slow.reply", {"real": False}, reply_to=guess)))
    await raw.ws.send_bytes(raw.seal(wire.Message("ping", {}, id=7)))
    assert (await raw.receive_message()).reply_to == 7
    assert not asking.done()
    release.set()
    assert await asking == {"real": True}
