"""Offline delivery through a CORE peer's in-memory mailbox, between real nodes on 127.0.0.1."""
from __future__ import annotations

import asyncio
import time

import pytest

from core.chat import mailbox as mb
from core.chat import protocol as proto
from core.errors import (BlobExpired, CoveyError, ForgedSender, InvalidSignature, MailboxFull,
                         RefusedByPolicy, ReplayDetected, ReplayedMessage)
from core.node import Node
from core.signed import seal

from .support import Recorder, address, befriend, chat, texts, wait_until


async def trio(make_node):
    """alice and bob chat (external); carol is CORE for both and knows both (she keeps bob)."""
    alice, bob, carol = await make_node("alice"), await make_node("bob"), await make_node("carol")
    await befriend(alice, bob, "external", name="bob")
    await befriend(alice, carol, "core", name="carol")
    await befriend(carol, bob, "core", name="bob")
    return alice, bob, carol


def held(node: Node) -> int:
    return chat(node).mailbox.summary()["count"]


async def restart(node: Node, *, port: int = 0) -> Node:
    """The same home and identity in a new Node (memory starts empty), on ``port`` (0: a new one)."""
    home, identity, settings = node.home, node.identity, node.settings
    await node.stop()
    fresh = Node(home, identity, settings.__class__(**{**settings.__dict__, "listen": f"127.0.0.1:{port}"}))
    await fresh.start()
    return fresh


async def stop_bob_after_a_chat(alice: Node, bob: Node) -> None:
    await chat(alice).send("bob", "hello")
    await wait_until(lambda: chat(alice).read("bob", mark=False)[0]["state"] == "delivered")
    await wait_until(lambda: chat(alice).links[bob.identity.id].bundle is not None)  # a spare bundle at hand
    await bob.stop()
    await wait_until(lambda: bob.identity.id not in alice.connected_peers())


async def test_offline_recipient_gets_everything_through_the_mailbox_once_in_order(make_node):
    alice, bob, carol = await trio(make_node)
    a_id, b_id = alice.identity.id, bob.identity.id
    await stop_bob_after_a_chat(alice, bob)
    sent = [f"while away {i}" for i in range(5)]
    for text in sent:
        await chat(alice).send("bob", text)
    await wait_until(lambda: held(carol) == 5)
    row = chat(carol).mailbox.summary()["recipients"][0]
    assert row["recipient"] == b_id and row["count"] == 5 and row["bytes"] > 0 and "text" not in row
    assert all(text.encode() not in repr(b.envelope).encode() for m in chat(carol).mailbox.held._by.values()
               for b in m.values() for text in sent)               # opaque: no plaintext held
    await alice.stop()                                             # the sender is gone too
    bob2 = await restart(bob)                                      # same home, memory empty
    try:
        await bob2.add_peer(address(carol))
        await wait_until(lambda: texts(bob2, alice) == sent, 20)
        await wait_until(lambda: held(carol) == 0)
        assert a_id not in bob2.connected_peers()                  # it all came through carol
        assert [m["from"] for m in chat(bob2).read(a_id)] == [a_id] * 5
    finally:
        await bob2.stop()


async def test_mailbox_and_link_together_show_each_message_once(make_node):
    alice, bob, carol = await trio(make_node)
    await stop_bob_after_a_chat(alice, bob)
    sent = [f"m{i}" for i in range(20)]
    for text in sent:
        await chat(alice).send("bob", text)
    await wait_until(lambda: held(carol) == 20)
    bob2 = await restart(bob)                       # alice redials it and resends; carol hands over too
    try:
        await bob2.add_peer(address(carol))
        await alice.add_peer(address(bob2), name="bob")
        await wait_until(lambda: all(m["state"] == "delivered" for m in chat(alice).read("bob", mark=False)), 20)
        await wait_until(lambda: held(carol) == 0, 20)
        await chat(alice).send("bob", "and now directly")
        await wait_until(lambda: texts(bob2, alice)[-1:] == ["and now directly"], 20)
        assert texts(bob2, alice) == [*sent, "and now directly"]
    finally:
        await bob2.stop()


async def test_a_blob_past_its_ttl_is_dropped_and_never_delivered(make_node):
    alice, bob, carol = await trio(make_node)
    await stop_bob_after_a_chat(alice, bob)
    chat(alice).mailbox.ttl = 1
    await chat(alice).send("bob", "too late")
    await wait_until(lambda: held(carol) == 1)
    await asyncio.sleep(1.2)
    assert held(carol) == 0                                        # expired: dropped, never handed over
    await alice.stop()
    bob2 = await restart(bob)
    try:
        await bob2.add_peer(address(carol))
        await wait_until(lambda: carol.identity.id in bob2.connected_peers())
        await chat(carol).send("bob", "from carol")                # a later message does arrive
        await wait_until(lambda: texts(bob2, carol) == ["from carol"], 20)
        assert texts(bob2, alice) == []
        # the recipient refuses an expired blob too (a mailbox that held it too long)
        envelope = seal(alice.identity, mb.KIND, {"to": bob.identity.id, "s": b"\0" * 8, "w": b"x", "ttl": 60})
        with pytest.raises(BlobExpired):
            await chat(bob2).mailbox.open(envelope, now=time.time() + 61)
    finally:
        await bob2.stop()


async def test_over_the_quota_is_refused_with_a_reason(make_node):
    alice, bob, carol = await trio(make_node)
    chat(carol).mailbox.held.per_count = 2
    seen = Recorder(carol)
    await stop_bob_after_a_chat(alice, bob)
    for i in range(4):
        await chat(alice).send("bob", f"m{i}")
    await wait_until(lambda: any("limit" in e.data["reason"]
                                 for e in seen.named("message_rejected", type=mb.KIND)))
    assert held(carol) == 2
    body = {"to": bob.identity.id, "s": b"\1" * 8, "w": b"y" * 10, "ttl": 60}
    with pytest.raises(MailboxFull, match="limit"):
        await alice.request(carol.identity.id, mb.PUT, {"blob": seal(alice.identity, mb.KIND, body)})
    chat(carol).mailbox.held.per_count = 1000
    huge = {**body, "w": b"z" * (mb.MAX_BLOB + 1)}
    with pytest.raises(CoveyError) as info:
        await alice.request(carol.identity.id, mb.PUT, {"blob": seal(alice.identity, mb.KIND, huge)})
    assert info.value.code in ("too_large", "chat_mailbox_full")
    assert held(carol) == 2


async def test_a_blob_from_a_peer_the_mailbox_does_not_hold_as_core_is_refused(make_node):
    alice, bob, carol = await trio(make_node)
    carol.peers.set_tier(alice.identity.id, "external")              # carol no longer relays for alice
    body = {"to": bob.identity.id, "s": b"\1" * 8, "w": b"y", "ttl": 60}
    with pytest.raises(RefusedByPolicy):
        await alice.request(carol.identity.id, mb.PUT, {"blob": seal(alice.identity, mb.KIND, body)})
    stranger_body = {**body, "to": "ab" * 32}                         # a recipient carol does not know
    carol.peers.set_tier(alice.identity.id, "core")
    with pytest.raises(CoveyError, match="does not hold messages"):
        await alice.request(carol.identity.id, mb.PUT, {"blob": seal(alice.identity, mb.KIND, stranger_body)})
    assert held(carol) == 0


async def test_a_forged_sender_is_refused_by_the_mailbox_and_the_recipient(make_node):
    alice, bob, carol = await trio(make_node)
    body = {"to": bob.identity.id, "s": b"\1" * 8, "w": b"y", "ttl": 60}
    by_alice = seal(alice.identity, mb.KIND, body)
    # bob (CORE at carol) deposits a blob signed by alice: the signer is not the sender
    with pytest.raises(RefusedByPolicy, match="not by its sender"):
        await bob.request(carol.identity.id, mb.PUT, {"blob": by_alice})
    # alice's name on a blob alice did not sign (body changed after signing)
    forged = {**by_alice, "body": {**body, "w": b"changed"}}
    with pytest.raises(InvalidSignature):
        await alice.request(carol.identity.id, mb.PUT, {"blob": forged})
    assert held(carol) == 0
    with pytest.raises(ForgedSender):                                # the recipient checks it too
        await chat(bob).mailbox.open(forged)


async def test_a_replayed_blob_is_refused_by_the_mailbox_and_opened_once_by_the_recipient(make_node):
    alice, bob, carol = await trio(make_node)
    await chat(alice).send("bob", "hello")
    await wait_until(lambda: texts(bob, alice) == ["hello"])
    link = chat(alice).links[bob.identity.id]
    await wait_until(lambda: link.bundle is not None)
    sid, wire = await link.encrypt_away(proto.encode_typing(False))   # a frame bob can decrypt
    envelope = seal(alice.identity, mb.KIND, {"to": bob.identity.id, "s": sid, "w": wire, "ttl": 60})
    await alice.request(carol.identity.id, mb.PUT, {"blob": envelope})
    with pytest.raises(ReplayDetected):
        await alice.request(carol.identity.id, mb.PUT, {"blob": envelope})
    assert held(carol) == 1
    await wait_until(lambda: held(carol) == 0)                         # bob is connected to carol: handed over
    with pytest.raises(ReplayedMessage):                               # handed over again: refused
        await chat(bob).mailbox.open(envelope)
    assert texts(bob, alice) == ["hello"]                              # the conversation goes on
    await chat(alice).send("bob", "still here")
    await wait_until(lambda: texts(bob, alice) == ["hello", "still here"])


async def test_a_restarted_peer_whose_first_reply_was_lost_gets_a_new_session(make_node, monkeypatch):
    """bob opened alice's session (using up its one-time prekey) but his ack never left; after
    his restart alice's resends still carry that used prekey: bob asks her to start anew."""
    from core.chat.link import Link
    alice, bob = await make_node("alice"), await make_node("bob")
    await befriend(alice, bob, "external", name="bob")
    bobs = chat(bob)
    original = Link._transmit

    async def bob_stays_silent(self, plaintext, **kwargs):
        if self.owner is not bobs:
            await original(self, plaintext, **kwargs)
    monkeypatch.setattr(Link, "_transmit", bob_stays_silent)
    await chat(alice).send("bob", "before")
    await wait_until(lambda: texts(bob, alice) == ["before"])
    assert chat(alice).read("bob", mark=False)[0]["state"] != "delivered"
    await bob.stop()
    monkeypatch.setattr(Link, "_transmit", original)
    bob2 = await restart(bob, port=bob.transport.port)
    try:
        await wait_until(lambda: texts(bob2, alice) == ["before"], 20)
        await wait_until(lambda: chat(alice).read("bob", mark=False)[0]["state"] == "delivered")
    finally:
        await bob2.stop()
