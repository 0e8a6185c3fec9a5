"""Contact verification: safety numbers match on both sides, the mark is stored, and a verified
contact that comes back with another key is refused loudly (both directions)."""
from __future__ import annotations

import logging

import pytest

from core.chat.errors import KeyChanged
from core.config import Settings
from core.identity import Identity
from core.node import Node

from .support import Recorder, befriend, chat, chat_pair, texts, wait_until


async def test_safety_number_and_mark(make_node):
    alice, bob = await chat_pair(make_node)
    mine = chat(alice).verify("bob")
    theirs = chat(bob).verify(alice.identity.id)
    assert mine["safety_number"] == theirs["safety_number"] and len(mine["safety_number"]) == 60
    assert not mine["verified"] and not chat(alice).conversation("bob")["verified"]
    assert not chat(alice).is_verified(bob.identity.id)
    seen = Recorder(alice)
    assert chat(alice).verify("bob", mark=True)["verified"]
    assert chat(alice).is_verified(bob.identity.id)
    assert seen.named("chat_verified", peer=bob.identity.id, retired=[])
    row = alice.store.query_one("SELECT * FROM chat_contacts WHERE peer = ?", (bob.identity.id,))
    assert row["verified"] == 1 and row["verified_key"] == bob.identity.id and row["name"] == "bob"
    assert chat(alice).conversation("bob")["verified"]
    assert chat(alice).qr_png("bob").startswith(b"\x89PNG")


async def test_verified_contact_with_a_changed_key_is_refused_loudly(make_node, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    await chat(alice).send("bob", "hi")
    await wait_until(lambda: texts(bob, alice) == ["hi"])
    chat(alice).verify("bob", mark=True)
    # someone else answers as "bob" now: another key under the verified name
    home = tmp_path / "impostor"
    home.mkdir()
    Identity.generate("bob").save(home)
    impostor = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await impostor.start()
    try:
        seen = Recorder(alice)
        await befriend(alice, impostor)
        i_id = impostor.identity.id
        assert alice.peers.get(i_id).name == "bob"
        with pytest.raises(KeyChanged, match="KEY CHANGED"):
            await chat(alice).send(i_id, "is that you?")
        assert seen.named("chat_key_changed", peer=i_id, verified_peer=bob.identity.id)
        with pytest.raises(KeyChanged):                  # it cannot start a session with us either
            await chat(impostor).send(a_id, "it's me, bob")
        assert any("KEY CHANGED" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)
        assert texts(alice, impostor) == [] and chat(alice).verify(i_id)["key_changed"]
        assert chat(alice).conversation(bob.identity.id)["verified"]    # the genuine one still is
        # the user compares the new safety number in person and marks it: chat goes ahead
        assert chat(alice).verify(i_id, mark=True)["verified"]
        assert seen.named("chat_verified", peer=i_id, retired=[bob.identity.id])   # the old key's mark is gone
        assert not chat(alice).is_verified(bob.identity.id)
        await chat(alice).send(i_id, "ok, verified")
        await wait_until(lambda: texts(impostor, alice) == ["ok, verified"])
        with pytest.raises(KeyChanged):                  # ...and the old key is the stranger now
            await chat(alice).send(bob.identity.id, "who are you?")
    finally:
        await impostor.stop()
