"""A mailbox copy for a peer that was away when the sender's node started, from the peer's
prekey bundle remembered in the sender's database (a real SQLite file), between real nodes."""
from __future__ import annotations

import logging
import sqlite3

import pytest

from core.chat.errors import KeyChanged
from core.chat.x3dh_adapter import ChatKeys
from core.config import Settings
from core.errors import CoveyError
from core.identity import Identity
from core.node import DB_FILE, Node

from .support import Recorder, address, befriend, chat, texts, wait_until
from .test_chat_mailbox import held, restart, trio

def bundle_usable(node: Node, peer: Node) -> bool:
    try:
        chat(node).mailbox.bundles.load(peer.identity.id)
    except CoveyError:
        return False
    return True


def states(node: Node, peer: Node) -> list[str]:
    return [m["state"] for m in chat(node).read(peer.identity.id, mark=False)]


async def chat_then_stop_both(alice: Node, bob: Node) -> None:
    """alice and bob chat; alice has bob's bundle stored; both stop (alice first)."""
    await chat(alice).send("bob", "hello")
    await wait_until(lambda: texts(bob, alice) == ["hello"])
    await wait_until(lambda: states(alice, bob) == ["delivered"])
    # a bundle with a fresh one-time prekey, fetched after bob's reply (and stored with the fix)
    await wait_until(lambda: chat(alice).links[bob.identity.id].bundle is not None)
    await alice.stop()
    await bob.stop()


async def alone_with_the_mailbox(alice: Node, carol: Node) -> Node:
    """alice starts again while bob is down; her node redials carol (the CORE mailbox)."""
    alice2 = await restart(alice)
    await wait_until(lambda: carol.identity.id in alice2.connected_peers(), 20)
    return alice2


async def test_a_sender_started_while_the_peer_was_away_leaves_a_copy_it_opens_once(make_node):
    alice, bob, carol = await trio(make_node)
    a_id, b_id = alice.identity.id, bob.identity.id
    await chat_then_stop_both(alice, bob)
    alice2 = await alone_with_the_mailbox(alice, carol)
    bob2 = None
    try:
        assert b_id not in alice2.connected_peers()
        await chat(alice2).send("bob", "left while you were away MARK-8c1f")
        await wait_until(lambda: held(carol) == 1, 20)
        for name in (DB_FILE, DB_FILE + "-wal"):                   # only public bundles on disk
            path = alice2.home / name
            assert not path.exists() or b"MARK-8c1f" not in path.read_bytes()
        bob2 = await restart(bob)
        await bob2.add_peer(address(carol))
        await wait_until(lambda: texts(bob2, alice2) == ["left while you were away MARK-8c1f"], 20)
        await wait_until(lambda: held(carol) == 0, 20)             # the mailbox forgot it
        assert a_id not in bob2.connected_peers()                  # it came through carol
        await alice2.add_peer(address(bob2), name="bob")           # the direct link resends: still once
        await wait_until(lambda: states(alice2, bob2) == ["delivered"], 20)
        await chat(alice2).send("bob", "and now directly")
        await wait_until(lambda: texts(bob2, alice2)[-1:] == ["and now directly"], 20)
        assert texts(bob2, alice2) == ["left while you were away MARK-8c1f", "and now directly"]
        assert held(carol) == 0
    finally:
        await alice2.stop()
        if bob2 is not None:
            await bob2.stop()


def tamper(node: Node, peer: Node) -> None:
    """Flip one byte of the stored envelope (inside the signed prekey) in the database file."""
    with sqlite3.connect(node.home / DB_FILE) as db:
        raw, opk = db.execute("SELECT envelope, opk FROM chat_bundles WHERE peer = ?",
                              (peer.identity.id,)).fetchone()
        at = raw.index(opk)                       # a signed field: the one-time prekey's bytes
        db.execute("UPDATE chat_bundles SET envelope = ? WHERE peer = ?",
                   (raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:], peer.identity.id))


@pytest.mark.parametrize("bad", ["tampered", "expired"])
async def test_an_unusable_stored_bundle_is_refused_and_the_message_waits(make_node, caplog, bad):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob, carol = await trio(make_node)
    await chat_then_stop_both(alice, bob)
    if bad == "tampered":
        tamper(alice, bob)
    alice2 = await alone_with_the_mailbox(alice, carol)
    if bad == "expired":
        chat(alice2).mailbox.bundles.max_age = 0
    bob2 = None
    try:
        await chat(alice2).send("bob", "waits")
        reason = "damaged" if bad == "tampered" else "lifetime"
        await wait_until(lambda: any(reason in r.getMessage() and bob.identity.id[:12] in r.getMessage()
                                     for r in caplog.records), 20)
        assert held(carol) == 0 and states(alice2, bob) == ["queued"]
        with pytest.raises(CoveyError, match="no prekey bundle"):   # the bad row is gone
            chat(alice2).mailbox.bundles.load(bob.identity.id)
        bob2 = await restart(bob)                                   # the message waited in memory
        await alice2.add_peer(address(bob2), name="bob")
        await wait_until(lambda: texts(bob2, alice2) == ["waits"], 20)
        await wait_until(lambda: states(alice2, bob2) == ["delivered"], 20)
        assert texts(bob2, alice2) == ["waits"]
    finally:
        await alice2.stop()
        if bob2 is not None:
            await bob2.stop()


async def test_a_bundle_whose_signed_prekey_was_rotated_away_is_refused_and_sent_later(make_node):
    alice, bob, carol = await trio(make_node)
    await chat_then_stop_both(alice, bob)
    keys = ChatKeys.load_or_create(bob.home, bob.identity)          # bob rotates twice while down:
    for _ in range(2):                                              # the stored bundle's prekey is gone
        keys._state.rotate_signed_pre_key(force=True)
    alice2 = await alone_with_the_mailbox(alice, carol)
    bob2 = None
    try:
        await chat(alice2).send("bob", "from before the rotation")
        await wait_until(lambda: held(carol) == 1, 20)
        bob2 = await restart(bob)
        seen = Recorder(bob2)
        await bob2.add_peer(address(carol))
        await wait_until(lambda: held(carol) == 0, 20)
        refusal = seen.named("message_rejected", code="chat_key_agreement")
        assert refusal and "not available" in refusal[0].data["reason"]   # a clear reason, logged
        assert texts(bob2, alice2) == [] and states(alice2, bob2) == ["queued"]
        await alice2.add_peer(address(bob2), name="bob")            # not lost: it goes when both are up
        await wait_until(lambda: texts(bob2, alice2) == ["from before the rotation"], 20)
        await wait_until(lambda: states(alice2, bob2) == ["delivered"], 20)
        assert texts(bob2, alice2) == ["from before the rotation"]
    finally:
        await alice2.stop()
        if bob2 is not None:
            await bob2.stop()


async def test_a_used_stored_bundle_is_not_used_again_after_another_restart(make_node, caplog):
    """The first copy used the stored bundle's one-time prekey; after alice restarts again a
    second session from it would fail at bob, so the second message waits for the direct link."""
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob, carol = await trio(make_node)
    await chat_then_stop_both(alice, bob)
    alice2 = await alone_with_the_mailbox(alice, carol)
    await chat(alice2).send("bob", "first")
    await wait_until(lambda: held(carol) == 1, 20)
    alice3 = await restart(alice2)
    await wait_until(lambda: carol.identity.id in alice3.connected_peers(), 20)
    bob2 = None
    try:
        await chat(alice3).send("bob", "second")
        await wait_until(lambda: any("used already" in r.getMessage() for r in caplog.records), 20)
        assert held(carol) == 1
        bob2 = await restart(bob)
        await bob2.add_peer(address(carol))
        await wait_until(lambda: texts(bob2, alice3) == ["first"], 20)
        await alice3.add_peer(address(bob2), name="bob")
        await wait_until(lambda: texts(bob2, alice3) == ["first", "second"], 20)
        await wait_until(lambda: states(alice3, bob2) == ["delivered"], 20)
        assert held(carol) == 0
    finally:
        await alice3.stop()
        if bob2 is not None:
            await bob2.stop()


async def test_a_chat_peer_never_chatted_with_gets_a_copy_from_the_bundle_fetched_on_connect(make_node):
    alice, bob, carol = await trio(make_node)          # no chat between alice and bob, ever
    assert chat(alice).links == {}
    alice2 = await restart(alice)                      # her node dials bob (tiers set): fetched then
    bob2 = None
    try:
        await wait_until(lambda: bundle_usable(alice2, bob), 20)
        assert chat(alice2).links == {}                # in the background, with no conversation
        await bob.stop()
        await wait_until(lambda: bob.identity.id not in alice2.connected_peers())
        await chat(alice2).send("bob", "first words, while you are away")
        await wait_until(lambda: held(carol) == 1, 20)
        bob2 = await restart(bob)
        await bob2.add_peer(address(carol))
        await wait_until(lambda: texts(bob2, alice2) == ["first words, while you are away"], 20)
        await wait_until(lambda: held(carol) == 0, 20)
    finally:
        await alice2.stop()
        if bob2 is not None:
            await bob2.stop()


async def test_the_stored_bundle_of_a_verified_peer_whose_key_changed_is_refused_loudly(make_node, tmp_path,
                                                                                        caplog):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob, carol = await trio(make_node)
    await chat(alice).send("bob", "hi")
    await wait_until(lambda: texts(bob, alice) == ["hi"])
    await wait_until(lambda: bundle_usable(alice, bob))
    chat(alice).verify("bob", mark=True)
    home = tmp_path / "impostor"                       # another key under the verified name
    home.mkdir()
    Identity.generate("bob").save(home)
    impostor = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await impostor.start()
    try:
        await befriend(alice, impostor)
        seen = Recorder(alice)
        with pytest.raises(KeyChanged, match="KEY CHANGED"):
            chat(alice).mailbox.bundles.load(impostor.identity.id)
        assert seen.named("chat_key_changed", peer=impostor.identity.id, verified_peer=bob.identity.id)
        assert any("KEY CHANGED" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)
        assert bundle_usable(alice, bob)                # the genuine one's stays usable ...
        chat(alice).verify(impostor.identity.id, mark=True)   # ... until the user verifies the new key
        with pytest.raises(KeyChanged):
            chat(alice).mailbox.bundles.load(bob.identity.id)
    finally:
        await impostor.stop()
