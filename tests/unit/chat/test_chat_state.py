"""Conversations (memory, timer, states), the contact-request inbox, verified contacts, and
the delivery additions the service relies on (base, skip_to)."""
from __future__ import annotations

import pickle

import pytest

from core.chat.conversation import Conversation
from core.chat.db import MIGRATIONS, Contacts
from core.chat.delivery import Data, Delivery
from core.chat.requests import Requests
from core.errors import RateLimited
from core.store import Store

ME, PEER = "a" * 64, "b" * 64


def test_conversation_states_move_forward_only_and_expire():
    conv = Conversation(PEER, ME)
    out = conv.add(ME, "hi", 1.0, outgoing=True, ttl=0, now=100.0)
    inc = conv.add(PEER, "yo", 2.0, outgoing=False, ttl=30, now=100.0)
    assert conv.advance(out.id, "delivered") and not conv.advance(out.id, "sent")
    assert conv.advance(out.id, "read") and out.state == "read"
    assert not conv.advance(inc.id, "read")            # only our own messages take receipts
    assert conv.unread == 1 and conv.mark_read() == [inc.id] and conv.unread == 0
    assert conv.next_expiry() == 130.0
    assert conv.expire(129.0) == [] and conv.expire(130.0) == [inc.id]
    assert [m.id for m in conv.after(0)] == [out.id]
    conv.wipe()
    assert conv.after(0) == []


def test_conversation_is_bounded_and_cannot_be_pickled():
    conv = Conversation(PEER, ME, max_messages=3)
    for i in range(5):
        conv.add(PEER, f"m{i}", float(i), outgoing=False, ttl=0)
    assert [m.text for m in conv.after(0)] == ["m2", "m3", "m4"]
    for obj in (conv, conv.messages[3]):
        with pytest.raises(TypeError, match="memory"):
            pickle.dumps(obj)


def test_requests_rate_limits_and_bounds():
    now = [0.0]
    inbox = Requests(max_pending=2, per_peer=2, per_peer_window=60, total_per_minute=4, clock=lambda: now[0])
    inbox.add("p1" * 32, "one", "hi")
    inbox.add("p1" * 32, "one", "hi again")           # replaces the pending one
    with pytest.raises(RateLimited, match="per 1 minutes from one peer"):
        inbox.add("p1" * 32, "one", "third")
    inbox.add("p2" * 32, "two", "hello")
    with pytest.raises(RateLimited, match="already wait"):
        inbox.add("p3" * 32, "three", "hey")
    assert [r.text for r in inbox.list()] == ["hi again", "hello"]
    assert inbox.find("two").peer == "p2" * 32 and inbox.find("p1p1").peer == "p1" * 32
    inbox.pop("p2" * 32)
    inbox.add("p3" * 32, "three", "hey")                # 4th this minute
    with pytest.raises(RateLimited, match="this minute"):
        inbox.add("p4" * 32, "four", "x")
    now[0] = 61.0
    inbox.pop("p3" * 32)
    inbox.add("p1" * 32, "one", "a minute later")


def test_contacts_mark_conflict_and_retire(tmp_path):
    store = Store(tmp_path / "db")
    store.ensure_schema("chat", MIGRATIONS)
    contacts = Contacts(store)
    contacts.mark(PEER, "bob", "127.0.0.1:1")
    assert contacts.verified(PEER)["verified_key"] == PEER
    other = "c" * 64
    assert contacts.conflict(other, "bob", None)["peer"] == PEER
    assert contacts.conflict(other, "", "127.0.0.1:1")["peer"] == PEER
    assert contacts.conflict(other, "carol", "127.0.0.1:2") is None
    assert contacts.conflict(PEER, "bob", "127.0.0.1:1") is None
    contacts.mark(other, "bob", "127.0.0.1:3")          # the user verified the new key
    assert contacts.verified(PEER) is None and Contacts(store).verified(other) is not None
    store.close()


def test_delivery_base_and_skip_to_release_in_order():
    sender, receiver = Delivery(), Delivery()
    seqs = [sender.queue(f"m{i}".encode(), 0.0) for i in range(4)]
    assert sender.base == 1
    sender.forget(seqs[0])                             # disappeared before it was sent
    assert sender.base == 2
    # the receiver holds 3 early; skipping the forgotten 1 waits for 2, then releases 2 and 3
    assert receiver.on_data(Data(3, b"m2", 1)) == []
    assert receiver.skip_to(sender.base) == [] and receiver.released == 1
    assert receiver.on_data(Data(2, b"m1", 1)) == [(2, b"m1"), (3, b"m2")]
    # a base past early arrivals releases them, in order
    receiver3 = Delivery()
    receiver3.on_data(Data(3, b"m2", 1))
    assert receiver3.skip_to(5) == [(3, b"m2")] and receiver3.released == 4
    assert receiver3.on_data(Data(5, b"m4", 1)) == [(5, b"m4")]
    assert receiver3.skip_to(2) == []                  # never backwards


def test_message_times_read_as_datetime_writes_them():
    """The view's ISO times (the whole second's text is reused) equal datetime's, rounding included."""
    import random
    from datetime import datetime, timezone

    from core.chat.conversation import _iso
    rnd = random.Random(8)
    cases = [0.0, 0.0005, 0.9999994, 0.9999995, 1.9999995, 1e9 + 5e-7, 1e9 + 1.5e-6, 1764451200.9995,
             253402300799.0] + [rnd.uniform(0, 253402300799) for _ in range(5000)]
    cases += [1764451200 + i * 5e-7 for i in range(5000)]      # runs within one second, as messages come
    for ts in cases:
        assert _iso(ts) == datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds"), ts
