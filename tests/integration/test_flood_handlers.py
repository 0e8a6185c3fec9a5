"""Finding 5: the policy table is checked before any handler runs; handler tasks are bounded per
connection; messages are metered per peer; errors are not amplified into the log."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from core import events as ev
from core.net import wire
from core.net.connection import _split_batch

from .conftest import address, wait_until
from .test_bad_input import RawPeer, pair, session, still_serves  # noqa: F401  (fixtures)


class Inbox:
    """Messages a RawPeer receives, batch frames split (the node batches small replies)."""

    def __init__(self, raw: RawPeer):
        self.raw, self.queue = raw, []

    async def next(self) -> wire.Message:
        while not self.queue:
            frame = await self.raw.ws.receive()
            assert frame.type == aiohttp.WSMsgType.BINARY, frame
            plain = self.raw.channel.open(frame.data)
            if plain[0] == wire.FRAME_BATCH:
                self.queue += [wire.decode(m, 1 << 20) for m in _split_batch(plain)]
            else:
                self.queue.append(wire.decode(plain[1:], 1 << 20))
        return self.queue.pop(0)


async def test_an_unknown_peer_flooding_ml_update_runs_no_handler(pair, session):  # noqa: F811
    alice, bob = pair
    ran = []
    alice.on_message("probe.contribute", lambda peer, body: ran.append(peer) or {}, capability="learn_contribute")
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    inbox = Inbox(raw)
    for n in range(1, 301):
        await ws.send_bytes(raw.seal(wire.Message("ml.update", {"body": {"task": "00" * 8}}, id=n)))
    await ws.send_bytes(raw.seal(wire.Message("probe.contribute", {}, id=1000)))
    codes = set()
    for _ in range(301):
        reply = await inbox.next()
        assert reply.type == "error"
        codes.add(reply.body["code"])
    assert codes == {"refused_by_policy"}  # refused by the table, not by the handler's own checks
    assert ran == []
    await still_serves(alice, bob)


@pytest.mark.parametrize("eager", [False, True])
async def test_async_handler_tasks_are_bounded_per_connection_and_none_is_lost(make_node, session, eager):  # noqa: F811
    """Also for eager handlers (first step at dispatch, the rest as a task): the same bound."""
    alice = await make_node("alice", handler_tasks=8)
    bob = await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    await bob.add_peer(address(alice))
    gate, running, done = asyncio.Event(), [0], []
    peak = [0]

    async def slow(peer, body):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await gate.wait()
        running[0] -= 1
        done.append(body["n"])

    alice.on_message("slow", slow, eager=eager)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    for n in range(500):
        await ws.send_bytes(raw.seal(wire.Message("slow", {"n": n})))
    await wait_until(lambda: running[0] == 8, 10)
    await asyncio.sleep(0.2)  # give a flood the chance to spawn more
    conn = alice.connections[raw.identity.id]
    assert peak[0] == 8 and conn.gate.used == 8
    await still_serves(alice, bob)  # another peer is served while this one waits
    gate.set()
    await wait_until(lambda: len(done) == 500, 20)
    assert sorted(done) == list(range(500)) and conn.gate.used == 0


async def test_an_unknown_peer_is_metered_and_still_answered(make_node, session):  # noqa: F811
    alice = await make_node("alice", unknown_rate=200.0)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    for n in range(1, 601):
        await ws.send_bytes(raw.seal(wire.Message("ping", {}, id=n)))
    inbox = Inbox(raw)
    replies = [await inbox.next() for _ in range(600)]
    assert sorted(r.reply_to for r in replies) == list(range(1, 601))
    assert alice.connections[raw.identity.id].throttled > 0


async def test_error_messages_are_never_answered_and_not_amplified(pair, session, caplog):  # noqa: F811
    alice, bob = pair
    events = []
    alice.events.on(ev.MESSAGE_REJECTED, events.append)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    caplog.set_level(logging.INFO, logger="covey.node")
    for n in range(1, 1001):
        await ws.send_bytes(raw.seal(wire.Message("error", {"code": "x", "message": "y" * 150}, id=n)))
        await ws.send_bytes(raw.seal(wire.Message("no.such.type", {}, id=n + 5000)))
    await ws.send_bytes(raw.seal(wire.Message("ping", {}, id=9999)))
    replies, inbox = [], Inbox(raw)
    while True:
        reply = await inbox.next()
        replies.append(reply)
        if reply.reply_to == 9999:
            break
    assert all(r.reply_to != n for r in replies for n in range(1, 1001))  # errors are never answered
    assert len(replies) == 1001  # one refusal per unknown type, plus the pong
    lines = [r for r in caplog.records if r.name == "covey.node" and "reported an error" in r.getMessage()]
    assert len(events) <= 10 and len(lines) <= 10
    await still_serves(alice, bob)
