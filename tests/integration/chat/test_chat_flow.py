"""One-to-one chat between real nodes: round trip, receipts, typing, timer, close, requests, policy."""
from __future__ import annotations

import time

import pytest

from core.errors import PeerBanned, PeerUnreachable, RateLimited, RefusedByPolicy, UnknownPeer

from .support import Recorder, address, chat, chat_pair, texts, wait_until


async def test_round_trip_both_ways_with_delivery_and_read_states(make_node):
    alice, bob = await chat_pair(make_node)
    a_id, b_id = alice.identity.id, bob.identity.id
    sent = await chat(alice).send("bob", "hello bob")
    assert sent["from"] == a_id and sent["state"] in ("queued", "sent")
    await wait_until(lambda: texts(bob, alice) == ["hello bob"])
    await wait_until(lambda: chat(alice).read("bob", mark=False)[0]["state"] == "delivered")
    got = chat(bob).read(a_id)                      # bob reads: a read receipt goes back
    assert [(m["from"], m["text"]) for m in got] == [(a_id, "hello bob")]
    await wait_until(lambda: chat(alice).read("bob", mark=False)[0]["state"] == "read")
    await chat(bob).send(a_id, "hi alice")
    await wait_until(lambda: texts(alice, bob) == ["hello bob", "hi alice"])
    summary = chat(alice).conversation("bob")
    assert summary["encrypted"] and summary["unread"] == 1 and summary["messages"] == 2
    assert set(chat(alice).read("bob")[1]) >= {"id", "from", "text", "sent_at", "state"}
    assert chat(alice).conversation("bob")["unread"] == 0
    assert [c["peer"] for c in chat(bob).conversations_view()] == [a_id]


async def test_a_message_to_a_connected_peer_is_on_the_wire_when_send_returns(make_node):
    """send() encrypts and writes the message in the caller's turn (no hop to the link's pump):
    its "sent" state is announced before send() returns; the receiver decrypts it in its
    reader's turn and shows it once."""
    alice, bob = await chat_pair(make_node)
    await chat(alice).send("bob", "warm-up")       # the session starts with the first one
    await wait_until(lambda: texts(bob, alice) == ["warm-up"])
    seen = Recorder(alice)
    try:
        sent = await chat(alice).send("bob", "at once")
        assert [e.data["id"] for e in seen.named("chat_state", state="sent")] == [sent["id"]]
    finally:
        seen.close()
    await wait_until(lambda: texts(bob, alice) == ["warm-up", "at once"])


async def test_a_name_resolves_to_whoever_holds_it_now(make_node):
    """send("NAME") remembers what NAME resolved to only while the peer book is unchanged:
    after a rename the name reaches the peer that holds it now."""
    from .support import befriend
    alice, bob = await chat_pair(make_node)
    carol = await make_node("carol")
    await befriend(alice, carol, name="carol")
    await chat(alice).send("bob", "to bob")
    await wait_until(lambda: texts(bob, alice) == ["to bob"])
    alice.peers.add_or_update(bob.identity.id, name="robert")
    alice.peers.add_or_update(carol.identity.id, name="bob")
    sent = await chat(alice).send("bob", "to the new bob")
    assert sent["peer"] == carol.identity.id
    await wait_until(lambda: texts(carol, alice) == ["to the new bob"])
    assert texts(bob, alice) == ["to bob"]
    with pytest.raises(UnknownPeer):
        await chat(alice).send("carol", "nobody is called carol now")


async def test_messages_sent_while_the_peer_is_away_arrive_when_it_reconnects(make_node):
    alice, bob = await chat_pair(make_node)
    await chat(alice).send("bob", "first")
    await wait_until(lambda: texts(bob, alice) == ["first"])
    conn = alice.connections[bob.identity.id]
    alice.peers.set_tier(bob.identity.id, "external")
    await conn.close()
    sent = [await chat(alice).send("bob", f"later {i}") for i in range(3)]
    assert all(m["state"] in ("queued", "sent") for m in sent)
    await wait_until(lambda: texts(bob, alice) == ["first", "later 0", "later 1", "later 2"], 20)


async def test_a_reply_never_overtakes_the_acknowledgement_of_what_it_answers(make_node, monkeypatch):
    """Acks wait a little to be batched; a message going out takes the waiting ones with it,
    first, so the sender sees its message delivered before the reply arrives."""
    from core.chat import link
    monkeypatch.setattr(link, "ACK_DELAY", 30.0)     # an ack alone would wait 30 s
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    await chat(alice).send("bob", "question")
    await wait_until(lambda: "question" in texts(bob, alice))
    await chat(bob).send(a_id, "answer")
    await wait_until(lambda: "answer" in texts(alice, bob))
    states = {m["text"]: m["state"] for m in chat(alice).read("bob", mark=False)}
    assert states["question"] == "delivered"


async def test_read_receipts_off_are_neither_sent_nor_shown(make_node):
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    chat(bob).settings(read_receipts=False)
    await chat(alice).send("bob", "one")
    await wait_until(lambda: texts(bob, alice) == ["one"])
    chat(bob).read(a_id)                              # read, but receipts are off on bob
    await chat(bob).send(a_id, "reply")               # goes out after any receipt would have
    await wait_until(lambda: "reply" in texts(alice, bob))
    assert chat(alice).read("bob", mark=False)[0]["state"] == "delivered"
    # the other way: bob (off) does not show alice's read receipt, though she sends it
    await wait_until(lambda: chat(bob).read(a_id, mark=False)[-1]["state"] == "delivered")
    chat(alice).read("bob")
    await chat(alice).send("bob", "after reading")
    await wait_until(lambda: "after reading" in texts(bob, alice))
    assert chat(bob).read(a_id, mark=False)[1]["state"] == "delivered"
    # on again: shown
    chat(bob).settings(read_receipts=True)
    chat(bob).read(a_id)
    await wait_until(lambda: chat(alice).read("bob", mark=False)[-1]["state"] == "read")


async def test_typing_indicator_shown_and_switched_off(make_node):
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    seen = Recorder(bob)
    await chat(alice).send("bob", "hi")
    await wait_until(lambda: texts(bob, alice) == ["hi"])
    await chat(alice).typing("bob", True)
    await wait_until(lambda: seen.named("chat_typing", peer=a_id, typing=True))
    assert chat(bob).conversation(a_id)["typing"]
    await chat(alice).send("bob", "done typing")      # a message ends the indicator
    await wait_until(lambda: "done typing" in texts(bob, alice))
    assert not chat(bob).conversation(a_id)["typing"]
    # off on the receiver: not shown
    chat(bob).settings(typing=False)
    before = len(seen.named("chat_typing"))
    await chat(alice).typing("bob", False)
    await chat(alice).typing("bob", True)
    await chat(alice).send("bob", "marker 1")
    await wait_until(lambda: "marker 1" in texts(bob, alice))
    assert len(seen.named("chat_typing")) == before and not chat(bob).conversation(a_id)["typing"]
    # off on the sender: nothing is sent
    chat(bob).settings(typing=True)
    chat(alice).settings(typing=False)
    await chat(alice).typing("bob", True)
    await chat(alice).send("bob", "marker 2")
    await wait_until(lambda: "marker 2" in texts(bob, alice))
    assert len(seen.named("chat_typing")) == before


async def test_timer_travels_and_both_sides_drop_the_message(make_node):
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    assert chat(alice).set_timer("bob", "30s") == {"peer": bob.identity.id, "timer": "30s"}
    await wait_until(lambda: chat(bob).conversation(a_id)["timer"] == "30s")
    assert chat(bob).conversation(a_id)["timer_set_by"] == "peer"
    await chat(alice).send("bob", "self-destructing")
    await wait_until(lambda: texts(bob, alice) == ["self-destructing"])
    shown = chat(bob).read(a_id, mark=False)[0]
    assert shown["expires_at"] is not None                     # the receiver shows the timer
    later = time.time() + 31
    assert chat(alice).sweep(later) == 1 and chat(bob).sweep(later) == 1
    assert texts(alice, bob) == [] and texts(bob, alice) == []
    # switched off again by bob: alice honours it
    chat(bob).set_timer(a_id, "off")
    await wait_until(lambda: chat(alice).conversation("bob")["timer"] == "off")
    await chat(alice).send("bob", "stays")
    await wait_until(lambda: texts(bob, alice) == ["stays"])
    assert chat(bob).sweep(time.time() + 86400 * 2) == 0 and texts(bob, alice) == ["stays"]


async def test_close_wipes_both_sides_and_a_new_session_starts(make_node):
    alice, bob = await chat_pair(make_node)
    a_id = alice.identity.id
    seen = Recorder(bob)
    await chat(alice).send("bob", "secret")
    await wait_until(lambda: texts(bob, alice) == ["secret"])
    old = set(chat(bob).links[a_id].sessions)
    assert chat(alice).close("bob")["peer_told"]
    assert texts(alice, bob) == []
    await wait_until(lambda: seen.named("chat_closed", peer=a_id, by="peer"))
    assert texts(bob, alice) == []
    await wait_until(lambda: not chat(alice).links[bob.identity.id].closing)
    assert not chat(alice).links[bob.identity.id].sessions and not (set(chat(bob).links[a_id].sessions) & old)
    await chat(alice).send("bob", "fresh start")
    await wait_until(lambda: texts(bob, alice) == ["fresh start"])
    assert not (set(chat(bob).links[a_id].sessions) & old)


async def test_restart_starts_new_sessions(make_node, tmp_path):
    alice, bob = await chat_pair(make_node)
    await chat(alice).send("bob", "before")
    await wait_until(lambda: texts(bob, alice) == ["before"])
    # acknowledged before bob stops (else alice rightly sends it again to the restarted bob)
    await wait_until(lambda: chat(alice).read("bob", mark=False)[0]["state"] == "delivered")
    # bob restarts: same home, new process state
    from core.node import Node
    home, identity, settings = bob.home, bob.identity, bob.settings
    await bob.stop()
    bob2 = Node(home, identity, settings.__class__(**{**settings.__dict__, "listen": f"127.0.0.1:{bob.transport.port}"}))
    await bob2.start()
    try:
        await wait_until(lambda: alice.identity.id in bob2.connected_peers(), 20)
        assert texts(bob2, alice) == []                       # nothing survived the restart
        await chat(alice).send("bob", "after")               # old session: bob resets it
        await wait_until(lambda: texts(bob2, alice) == ["after"], 20)
        await chat(bob2).send(alice.identity.id, "back")
        await wait_until(lambda: texts(alice, bob2)[-1:] == ["back"])
    finally:
        await bob2.stop()


async def test_contact_request_accept_and_refuse(make_node):
    alice, carol, dave = await make_node("alice"), await make_node("carol"), await make_node("dave")
    a_id = alice.identity.id
    for stranger in (carol, dave):
        await stranger.add_peer(address(alice))
        stranger.peers.set_tier(a_id, "external")          # they would chat; alice does not know them
    await wait_until(lambda: len(alice.connected_peers()) == 2)
    seen = Recorder(alice)
    with pytest.raises((RefusedByPolicy, UnknownPeer)):
        await chat(carol).send(a_id, "let me in")            # an UNKNOWN peer cannot chat
    assert await chat(carol).request(a_id, "hi, it is carol from the meetup") == {"peer": a_id, "sent": True}
    await chat(dave).request(a_id, "dave here")
    assert seen.named("chat_request", peer=carol.identity.id)
    assert all("text" not in e.data for e in seen.named("chat_request"))
    pending = {r["peer"]: r["text"] for r in chat(alice).requests()}
    assert pending == {carol.identity.id: "hi, it is carol from the meetup", dave.identity.id: "dave here"}
    view = chat(alice).accept(carol.identity.id[:10])
    assert view["tier"] == "external"
    assert chat(alice).refuse(dave.identity.id)["refused"]
    assert chat(alice).requests() == []
    await chat(carol).send(a_id, "thanks!")
    await wait_until(lambda: texts(alice, carol) == ["thanks!"])
    with pytest.raises((RefusedByPolicy, UnknownPeer)):
        await chat(dave).send(a_id, "still refused")
    assert texts(alice, dave) == []


async def test_unknown_peer_cannot_chat_and_banned_cannot_request(make_node):
    alice, mallory = await make_node("alice"), await make_node("mallory")
    a_id, m_id = alice.identity.id, mallory.identity.id
    await mallory.add_peer(address(alice))
    mallory.peers.set_tier(a_id, "core")
    await wait_until(lambda: m_id in alice.connected_peers())
    # a raw chat.msg from an UNKNOWN peer is refused by policy before any chat code runs
    with pytest.raises(RefusedByPolicy):
        await mallory.request(a_id, "chat.msg", {"s": bytes(8), "w": b"x" * 64}, timeout=5)
    with pytest.raises(RefusedByPolicy):
        await mallory.request(a_id, "chat.bundle", {}, timeout=5)
    assert chat(alice).conversations_view() == []
    # banned: the connection ends and no request gets through
    await alice.ban(m_id)
    await wait_until(lambda: m_id not in alice.connected_peers() and a_id not in mallory.connected_peers())
    with pytest.raises((PeerBanned, PeerUnreachable, RefusedByPolicy)):
        await chat(mallory).request(a_id, "please")
    assert chat(alice).requests() == []


async def test_contact_requests_are_rate_limited_per_peer(make_node):
    alice, carol = await make_node("alice"), await make_node("carol")
    await carol.add_peer(address(alice))
    await wait_until(lambda: carol.identity.id in alice.connected_peers())
    for i in range(3):
        await chat(carol).request(alice.identity.id, f"request {i}")
    with pytest.raises(RateLimited):
        await chat(carol).request(alice.identity.id, "request 3")
    assert [r["text"] for r in chat(alice).requests()] == ["request 2"]  # one held per peer, the newest


async def test_messages_behind_the_window_go_out_when_acks_arrive(make_node):
    """Only WINDOW messages are in flight; an ack that moves the window sends the next ones at
    once (not at the next resend, which is an hour away here)."""
    from core.chat.link import WINDOW
    alice, bob = await chat_pair(make_node)
    await chat(alice).send("bob", "open the session")
    await wait_until(lambda: texts(bob, alice) == ["open the session"])
    link = chat(alice).links[bob.identity.id]
    link.out.backoff_base = link.out.backoff_max = 3600.0
    for i in range(WINDOW + 40):
        await chat(alice).send("bob", f"burst {i}")
    await wait_until(lambda: len(texts(bob, alice)) == WINDOW + 41, 30)
    assert texts(bob, alice)[1:] == [f"burst {i}" for i in range(WINDOW + 40)]
