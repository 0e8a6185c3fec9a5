"""Bad chat input from real peers: each is refused with a clear reason in the log, and the
conversation goes on (the next messages arrive, in both directions)."""
from __future__ import annotations

import logging

import pytest

from core.chat import protocol as proto
from core.chat.delivery import Ack
from core.chat.errors import BadBundle
from core.chat.ratchet import MAX_SKIP
from core.chat.session import Session
from core.errors import RateLimited

from .support import Recorder, address, befriend, chat, chat_pair, texts, wait_until


@pytest.fixture
async def talking(make_node, caplog):
    """alice and bob after one message each way (sessions and epochs established)."""
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob = await chat_pair(make_node)
    await chat(alice).send("bob", "hello")
    await wait_until(lambda: texts(bob, alice) == ["hello"])
    await chat(bob).send(alice.identity.id, "hi")
    await wait_until(lambda: texts(alice, bob) == ["hello", "hi"])
    return alice, bob


async def frame_wire(sender, receiver, plaintext: bytes) -> dict:
    """A ``chat.msg`` body: ``plaintext`` encrypted on sender's current session (not sent)."""
    session = chat(sender).links[receiver.identity.id].current
    return {"s": session.session_id[:proto.SID], "w": await session.encrypt(plaintext)}


async def refused(caplog, bob, code: str) -> str:
    """Wait for bob's log line naming the refusal ``code``; returns it."""
    await wait_until(lambda: any(f"[{code}]" in r.getMessage() for r in caplog.records))
    return next(r.getMessage() for r in caplog.records if f"[{code}]" in r.getMessage())


async def goes_on(alice, bob, tag: str) -> None:
    await chat(alice).send("bob", f"still here {tag}")
    await wait_until(lambda: texts(bob, alice)[-1:] == [f"still here {tag}"])
    await chat(bob).send(alice.identity.id, f"me too {tag}")
    await wait_until(lambda: texts(alice, bob)[-1:] == [f"me too {tag}"])


async def test_tampered_ciphertext(talking, caplog):
    alice, bob = talking
    body = await frame_wire(alice, bob, proto.encode_typing(True))
    body["w"] = body["w"][:-1] + bytes([body["w"][-1] ^ 1])
    await alice.send(bob.identity.id, "chat.msg", body)
    line = await refused(caplog, bob, "chat_decrypt_failed")
    assert "does not decrypt" in line and alice.identity.id[:12] in line
    await goes_on(alice, bob, "tampered")


async def test_replayed_message(talking, caplog):
    alice, bob = talking
    seen = Recorder(bob)
    body = await frame_wire(alice, bob, proto.encode_typing(True))
    await alice.send(bob.identity.id, "chat.msg", body)
    await wait_until(lambda: seen.named("chat_typing", typing=True))
    await alice.send(bob.identity.id, "chat.msg", body)          # the same bytes again
    assert "replay" in await refused(caplog, bob, "chat_replay")
    assert len(seen.named("chat_typing")) == 1
    await goes_on(alice, bob, "replay")


async def test_message_for_a_closed_conversation(talking, caplog):
    alice, bob = talking
    body = await frame_wire(alice, bob, proto.encode_typing(True))   # made before the close
    chat(alice).close("bob")
    await wait_until(lambda: texts(bob, alice) == [] and not chat(alice).links[bob.identity.id].closing)
    await alice.send(bob.identity.id, "chat.msg", body)
    assert "closed conversation" in await refused(caplog, bob, "chat_session_closed")
    await goes_on(alice, bob, "closed")
    assert texts(bob, alice) == ["still here closed", "me too closed"]   # nothing from before


async def test_forged_sender(make_node, caplog):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob = await chat_pair(make_node)
    carol = await make_node("carol")
    await befriend(carol, bob)
    # alice makes an initial message for bob; carol (also bob's contact) passes it off as hers
    link = chat(alice).links.get(bob.identity.id) or chat(alice)._link(bob.identity.id)
    await link.ensure_bundle()
    session, wire = await Session.initiate(chat(alice).keys, bob.identity.id, link.bundle,
                                           proto.encode_typing(True))
    await carol.send(bob.identity.id, "chat.msg", {"s": session.session_id[:proto.SID], "w": wire})
    assert "names another identity" in await refused(caplog, bob, "chat_forged_sender")
    assert bob.identity.id not in [c["peer"] for c in chat(bob).conversations_view()]
    link.bundle = None
    await goes_on(alice, bob, "forged")
    await chat(carol).send(bob.identity.id, "carol's own")
    await wait_until(lambda: texts(bob, carol) == ["carol's own"])


async def test_ack_and_receipt_for_unknown_messages(talking, caplog):
    alice, bob = talking
    link = chat(alice).links[bob.identity.id]
    epoch = link.peer_epoch                         # bob's sending epoch, as alice knows it
    await link._transmit(proto.encode_ack(epoch, Ack(999)))
    assert "only 1 messages were sent" in await refused(caplog, bob, "chat_bad_receipt")
    caplog.clear()
    await link._transmit(proto.encode_ack(epoch, Ack(1, (), 77)))   # read receipt for seq 77
    assert "never sent" in await refused(caplog, bob, "chat_bad_receipt")
    await goes_on(alice, bob, "ack")


async def test_message_skipping_more_keys_than_the_bound(talking, caplog):
    alice, bob = talking
    body = await frame_wire(alice, bob, proto.encode_typing(True))
    wire = body["w"]                                # claims to be far ahead in the chain:
    n = int.from_bytes(wire[38:42], "big")          # n, the chain length (after version, flags, key, pn)
    body["w"] = wire[:38] + (n + MAX_SKIP + 10).to_bytes(4, "big") + wire[42:]
    await alice.send(bob.identity.id, "chat.msg", body)
    assert f"skips more than {MAX_SKIP}" in await refused(caplog, bob, "chat_skip_bound")
    await goes_on(alice, bob, "skip")


async def test_oversized_message(talking, caplog):
    alice, bob = talking
    sid = chat(alice).links[bob.identity.id].current.session_id[:proto.SID]
    await alice.send(bob.identity.id, "chat.msg", {"s": sid, "w": b"\0" * (proto.MAX_WIRE + 1)})
    assert "exceeds" in await refused(caplog, bob, "too_large")
    with pytest.raises(Exception, match="exceeds"):
        await chat(alice).send("bob", "x" * (proto.MAX_TEXT + 1))
    await goes_on(alice, bob, "oversized")


async def test_flood_of_contact_requests(make_node, caplog):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob = await chat_pair(make_node)
    strangers = [await make_node(f"s{i}") for i in range(3)]
    chat(alice).inbox.total_per_minute = 5
    for s in strangers:
        await s.add_peer(address(alice))
    await wait_until(lambda: len(alice.connected_peers()) == 4)
    accepted = refused_count = 0
    for round_ in range(4):
        for s in strangers:
            try:
                await chat(s).request(alice.identity.id, f"let me in {round_}")
                accepted += 1
            except RateLimited:
                refused_count += 1
    assert accepted == 5 and refused_count == 7
    assert len(chat(alice).requests()) == 3                # one per peer, bounded
    assert "rate_limited" in await refused(caplog, alice, "rate_limited")
    await goes_on(alice, bob, "flood")


async def test_prekey_bundle_with_a_bad_signature(make_node, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="covey.chat")
    alice, bob = await chat_pair(make_node)
    genuine = chat(bob).keys.bundle_for

    def forged(peer_id):
        envelope = genuine(peer_id)
        return {**envelope, "sig": bytes(64)}
    monkeypatch.setattr(chat(bob).keys, "bundle_for", forged)
    with pytest.raises(BadBundle):
        await chat(alice).send("bob", "first try")
    line = await refused(caplog, alice, "chat_bad_bundle")
    assert "prekey bundle refused" in line and "signature" in line
    assert texts(alice, bob) == [] and texts(bob, alice) == []
    monkeypatch.setattr(chat(bob).keys, "bundle_for", genuine)
    await goes_on(alice, bob, "bundle")


async def test_a_frame_lost_in_a_cut_has_its_key_dropped_after_its_time(talking, caplog, monkeypatch):
    """alice's frames lost on the way leave their keys among bob's skipped ones; bob's expiry
    sweep drops them after SKIPPED_TTL, and a late copy is refused (the conversation goes on)."""
    import core.chat.ratchet as ratchet_mod
    alice, bob = talking
    lost = [await frame_wire(alice, bob, proto.encode_typing(True)) for _ in range(3)]
    await goes_on(alice, bob, "after the cut")
    session = chat(bob).links[alice.identity.id].sessions[lost[0]["s"]]
    assert session._ratchet.next_skipped_expiry() is not None        # the 3 keys wait, in memory
    monkeypatch.setattr(ratchet_mod, "SKIPPED_TTL", 0.0)                # their time has come
    chat(bob).sweep()
    assert session._ratchet.next_skipped_expiry() is None
    await alice.send(bob.identity.id, "chat.msg", lost[1])            # its chain has turned since:
    assert "does not decrypt" in await refused(caplog, bob, "chat_decrypt_failed")  # no key left for it
    await goes_on(alice, bob, "after the expiry")
