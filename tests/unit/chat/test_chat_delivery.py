"""The delivery state machine: exactly once, in order, under loss, duplication and reordering."""
from __future__ import annotations

import heapq
import random

import pytest

from core.errors import MalformedMessage
from core.chat.delivery import Ack, Data, Delivery
from core.chat.errors import BadReceipt, OutboxFull


class LossyLink:
    """Frames in flight with random loss, duplication and delay (so reordering), on a fake clock."""

    def __init__(self, rng: random.Random, loss: float, dup: float, max_delay: float):
        self.rng, self.loss, self.dup, self.max_delay = rng, loss, dup, max_delay
        self._heap: list = []
        self._n = 0

    def send(self, frame, now: float) -> None:
        copies = 0 if self.rng.random() < self.loss else 1
        if self.rng.random() < self.dup:
            copies += 1
        for _ in range(copies):
            self._n += 1
            heapq.heappush(self._heap, (now + self.rng.uniform(0, self.max_delay), self._n, frame))

    def due(self, now: float):
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[2]


def test_ten_thousand_messages_arrive_exactly_once_in_order_over_a_bad_link():
    rng = random.Random(20240607)
    total = 10_000
    alice, bob = Delivery(), Delivery()
    to_bob = LossyLink(rng, loss=0.2, dup=0.1, max_delay=0.5)
    to_alice = LossyLink(rng, loss=0.2, dup=0.1, max_delay=0.5)
    shown, delivered, queued, now = [], [], 0, 0.0
    for _ in range(400_000):  # bounded: fails rather than hangs
        if len(delivered) == total:
            break
        while queued < total and alice.unacked < alice.window:
            alice.queue(b"msg %d" % queued, now)
            queued += 1
        for frame in alice.tick(now)[0]:
            to_bob.send(frame, now)
        for frame in bob.tick(now)[0]:
            to_alice.send(frame, now)
        for frame in to_bob.due(now):
            shown.extend(payload for _, payload in bob.on_data(frame))
        for frame in to_alice.due(now):
            delivered.extend(alice.on_ack(frame).delivered)
        now += 0.05
    assert shown == [b"msg %d" % i for i in range(total)]
    assert sorted(delivered) == list(range(1, total + 1))  # each delivery receipt exactly once
    assert alice.unacked == 0


def test_outbox_is_bounded():
    d = Delivery(max_outbox=5, window=5, max_reorder=5)
    for i in range(5):
        d.queue(b"x", 0.0)
    with pytest.raises(OutboxFull):
        d.queue(b"x", 0.0)
    d.on_ack(Ack(2))
    d.queue(b"x", 0.0)


def test_resends_back_off_exponentially_and_resume_on_link_up():
    d = Delivery(backoff_base=1.0, backoff_max=8.0)
    d.queue(b"x", 0.0)
    sends, now = [], 0.0
    while now < 40:
        frames, wake = d.tick(now)
        sends += [now for f in frames if isinstance(f, Data)]
        now = wake
    assert sends[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0]   # gaps 1, 2, 4, 8, 8 (capped)
    d.link_up(now + 0.5)
    frames, _ = d.tick(now + 0.5)
    assert [f.attempt for f in frames] == [len(sends) + 1]


def test_only_the_window_is_in_flight():
    d = Delivery(window=4, max_reorder=8)
    for i in range(10):
        d.queue(b"%d" % i, 0.0)
    frames, _ = d.tick(0.0)
    assert [f.seq for f in frames] == [1, 2, 3, 4]
    d.on_ack(Ack(2))
    frames, _ = d.tick(0.1)
    assert [f.seq for f in frames] == [5, 6]


def test_duplicates_are_released_once_and_acknowledged_again():
    bob = Delivery()
    assert bob.on_data(Data(1, b"a", 1)) == [(1, b"a")]
    assert bob.tick(0)[0] == [Ack(1, (), 0)]
    assert bob.tick(0)[0] == []
    assert bob.on_data(Data(1, b"a", 2)) == []
    assert bob.tick(0)[0] == [Ack(1, (), 0)]   # the first ack may have been lost


def test_early_messages_wait_and_are_selectively_acknowledged():
    bob = Delivery(window=2, max_reorder=3)
    assert bob.on_data(Data(3, b"c", 1)) == []
    assert bob.on_data(Data(9, b"far", 1)) == []          # beyond the reorder bound: dropped
    assert bob.tick(0)[0] == [Ack(0, (3,), 0)]
    assert bob.on_data(Data(2, b"b", 1)) == []
    assert bob.on_data(Data(1, b"a", 1)) == [(1, b"a"), (2, b"b"), (3, b"c")]


def test_read_receipts_flow_and_can_be_turned_off():
    alice, bob = Delivery(), Delivery()
    for text in (b"a", b"b", b"c"):
        alice.queue(text, 0.0)
    for frame in alice.tick(0.0)[0]:
        bob.on_data(frame)
    (ack,), _ = bob.tick(0.0)
    assert alice.on_ack(ack).delivered == (1, 2, 3)
    bob.mark_read(2)
    (ack,), _ = bob.tick(1.0)
    assert ack.read == 2
    receipts = alice.on_ack(ack)
    assert receipts.delivered == () and receipts.read == 2
    assert alice.on_ack(ack).read is None   # an old read mark again is no news
    bob.mark_read(99)                   # clamped to what was shown
    (ack,), _ = bob.tick(2.0)
    assert ack.read == 3
    assert alice.on_ack(ack).read == 3

    quiet_alice, quiet_bob = Delivery(read_receipts=False), Delivery(read_receipts=False)
    quiet_alice.queue(b"a", 0.0)
    quiet_bob.on_data(quiet_alice.tick(0.0)[0][0])
    quiet_bob.mark_read(1)
    (ack,), _ = quiet_bob.tick(0.0)
    assert ack.read is None             # not sent
    assert quiet_bob.tick(1.0)[0] == []
    assert quiet_alice.on_ack(Ack(1, (), 1)).read is None   # and not shown if the peer sends one


@pytest.mark.parametrize("ack", [Ack(3), Ack(-1), Ack(0, (3,)), Ack(1, (1,)), Ack(0, (0,)),
                                 Ack(0, (), 5), Ack(True), Ack(0, [2]), Ack(0, (2.0,))])
def test_receipts_for_unknown_messages_are_refused(ack):
    alice = Delivery()
    alice.queue(b"a", 0.0)
    alice.queue(b"b", 0.0)
    with pytest.raises(BadReceipt):
        alice.on_ack(ack)
    assert alice.unacked == 2          # nothing was lost
    assert alice.on_ack(Ack(2)).delivered == (1, 2)


@pytest.mark.parametrize("data", [Data(0, b"x", 1), Data(-5, b"x", 1), Data(2 ** 64, b"x", 1),
                                  Data("1", b"x", 1), Data(1, "text", 1)])
def test_malformed_data_is_refused(data):
    bob = Delivery()
    with pytest.raises(MalformedMessage):
        bob.on_data(data)
    assert bob.on_data(Data(1, b"ok", 1)) == [(1, b"ok")]


def test_forgotten_message_is_not_resent():
    d = Delivery()
    seq = d.queue(b"gone", 0.0)
    assert d.forget(seq) and not d.forget(seq)
    assert d.tick(0.0) == ([], None)


class _WalkEveryTick(Delivery):
    """The plain algorithm tick's shortcut must agree with: walk the window on every tick."""

    def tick(self, now):
        frames = []
        ack = self._ack_frame()
        if ack is not None:
            frames.append(ack)
        wake = None
        for index, (seq, item) in enumerate(self._outbox.items()):
            if index >= self.window:
                break
            if item.next_send <= now:
                self._send(seq, item, now, frames)
            wake = item.next_send if wake is None else min(wake, item.next_send)
        return frames, wake

    def due(self, now):
        return any(item.next_send <= now for item in list(self._outbox.values())[:self.window])


@pytest.mark.parametrize("seed", range(40))
def test_tick_sends_what_walking_the_window_sends(seed):
    """Random queues, ticks, acks, forgets and link-ups (some with clocks out of order): the same
    frames as the plain walk, and a wake time never later than its (early is allowed)."""
    import random
    rnd = random.Random(seed)
    window = rnd.choice([1, 4, 16])
    fast, plain = (cls(window=window, max_reorder=32, max_outbox=64) for cls in (Delivery, _WalkEveryTick))
    now = 0.0
    for _ in range(400):
        op = rnd.random()
        now += rnd.choice([0.0, 0.001, 0.3, 2.5])
        if op < 0.35 and fast.unacked < 64:
            at = now if rnd.random() < 0.9 else now + rnd.uniform(-1, 3)    # a clock out of order
            assert fast.queue(b"m", at) == plain.queue(b"m", at)
        elif op < 0.75:
            (got, wake), (want, plain_wake) = fast.tick(now), plain.tick(now)
            assert got == want
            assert (wake is None) == (plain_wake is None) and (wake is None or wake <= plain_wake)
            assert fast.due(now) == plain.due(now)
        elif op < 0.88 and fast._next_seq > 1:
            last = fast._next_seq - 1
            upto = rnd.randrange(0, last + 1)
            sel = tuple(sorted(rnd.sample(range(upto + 1, last + 1), min(2, last - upto))))
            assert fast.on_ack(Ack(upto, sel)) == plain.on_ack(Ack(upto, sel))
        elif op < 0.94 and fast._next_seq > 1:
            seq = rnd.randrange(1, fast._next_seq)
            assert fast.forget(seq) == plain.forget(seq)
        else:
            fast.link_up(now)
            plain.link_up(now)
