"""Gossip decisions: the tier table, forward targets, seen-set, buckets, counters, pulls."""
from __future__ import annotations

import pytest
from knowhelp import FakeClock

from core.knowledge import gossip
from core.knowledge.gossip import (
    Buckets,
    Counters,
    Forward,
    Inflight,
    Pull,
    SeenSet,
    TokenBucket,
    forward_plan,
    plan_batches,
)
from core.knowledge.protocol import MAX_HOPS, MAX_RANGES, range_count
from core.peers import Tier

ME, SENDER, AUTHOR = "0" * 64, "1" * 64, "2" * 64

# tier, banned -> we accept theirs, we propagate theirs, they may query ours, they get our forwards
TIER_TABLE = [
    (Tier.CORE, False, True, True, True, True),
    (Tier.SANDBOX, False, True, False, True, False),
    (Tier.EXTERNAL, False, False, False, True, False),
    (Tier.UNKNOWN, False, False, False, False, False),
    (Tier.CORE, True, False, False, False, False),
    (Tier.SANDBOX, True, False, False, False, False),
    (Tier.EXTERNAL, True, False, False, False, False),
]


@pytest.mark.parametrize("tier,banned,accept,propagate,query,forwarded_to", TIER_TABLE)
def test_tier_rules(tier, banned, accept, propagate, query, forwarded_to):
    assert gossip.may_accept(tier, banned) is accept
    assert gossip.may_accept(tier.value, banned) is accept  # names work as well as Tiers
    assert gossip.may_query(tier, banned) is query
    if not banned:
        assert gossip.relayable(tier) is propagate
    plan = forward_plan(self_id=ME, author=AUTHOR, from_peer=SENDER, hops=1, relay=True,
                        peers=[("9" * 64, tier, banned)])
    assert (plan.lazy == ("9" * 64,)) is forwarded_to


def test_our_own_packets_are_relayable():
    assert gossip.relayable(gossip.SELF)


PEERS = [(SENDER, Tier.CORE, False), (AUTHOR, Tier.CORE, False), ("3" * 64, Tier.CORE, False),
         ("4" * 64, Tier.CORE, False), ("5" * 64, Tier.SANDBOX, False), ("6" * 64, Tier.CORE, True),
         ("7" * 64, Tier.EXTERNAL, False), (ME, Tier.CORE, False)]


def test_relayed_packets_go_lazily_to_other_core_peers_never_back():
    plan = forward_plan(self_id=ME, author=AUTHOR, from_peer=SENDER, hops=2, relay=True, peers=PEERS)
    assert plan == Forward(eager=(), lazy=("3" * 64, "4" * 64))


def test_our_packets_go_eagerly_to_every_core_peer():
    plan = forward_plan(self_id=ME, author=ME, from_peer=None, hops=0, relay=True, peers=PEERS)
    assert plan == Forward(eager=(SENDER, AUTHOR, "3" * 64, "4" * 64), lazy=())


def test_no_forward_when_not_relayable_or_at_the_hop_limit():
    assert forward_plan(self_id=ME, author=AUTHOR, from_peer=SENDER, hops=1, relay=False,
                        peers=PEERS) == Forward()
    assert forward_plan(self_id=ME, author=AUTHOR, from_peer=SENDER, hops=MAX_HOPS, relay=True,
                        peers=PEERS) == Forward()
    assert forward_plan(self_id=ME, author=AUTHOR, from_peer=SENDER, hops=MAX_HOPS - 1, relay=True,
                        peers=PEERS).lazy


def test_seen_set_expires_and_is_bounded():
    clock = FakeClock()
    seen = SeenSet(max_entries=3, ttl=10, clock=clock)
    seen.add("a")
    clock.advance(5)
    seen.add("b")
    assert "a" in seen and "b" in seen
    clock.advance(6)
    assert "a" not in seen and "b" in seen
    for pid in "cdef":
        seen.add(pid)
    assert len(seen) == 3 and "b" not in seen and "c" not in seen and "f" in seen


def test_token_bucket():
    bucket = TokenBucket(rate=2, burst=4, now=0)
    assert [bucket.take(1, 0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(1, 0.5) and not bucket.take(1, 0.5)
    assert not bucket.take(5, 100)  # never more than the burst
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0)


def test_buckets_are_per_key_and_bounded():
    clock = FakeClock(0)
    buckets = Buckets(rate=1, burst=2, max_keys=2, clock=clock)
    assert buckets.take("x") and buckets.take("x") and not buckets.take("x")
    assert buckets.take("y")  # another key has its own bucket
    # Full table, nobody idle long enough: new keys share one overflow bucket.
    assert buckets.take("z1") and buckets.take("z2") and not buckets.take("z3")
    assert len(buckets) == 2
    # After x has been idle long enough to be full again it may be forgotten.
    clock.advance(10)
    assert buckets.take("w") and len(buckets) == 2
    assert buckets.take("x") and buckets.take("x")  # x comes back with a full bucket: nothing lost


def test_counters_per_peer_total_and_bounded():
    c = Counters(max_peers=2)
    c.add("p1", "received", 3)
    c.add("p1", "accepted")
    c.reject("p1", "invalid_signature")
    c.add("p2", "duplicates")
    c.add("p3", "received")  # beyond max_peers: folded into "other"
    c.add("p4", "received")
    view = c.view()
    assert view["total"] == {"sent": 0, "received": 5, "accepted": 1, "duplicates": 1,
                             "rejected": {"invalid_signature": 1}}
    assert view["peers"]["p1"]["rejected"] == {"invalid_signature": 1}
    assert view["peers"][gossip.OTHER]["received"] == 2 and "p3" not in view["peers"]
    assert Counters(rows=c.rows()).view() == view
    with pytest.raises(ValueError):
        c.reject("p1", "because")
    with pytest.raises(ValueError):
        c.add("p1", "stolen")


def test_inflight_one_peer_per_packet_with_expiry():
    clock = FakeClock()
    inflight = Inflight(max_entries=3, ttl=30, clock=clock)
    assert inflight.claim("p", AUTHOR, 1)
    assert inflight.claim("p", AUTHOR, 1)  # the same peer may ask again
    assert not inflight.claim("q", AUTHOR, 1)
    assert inflight.holder(AUTHOR, 1) == "p"
    clock.advance(31)
    assert inflight.claim("q", AUTHOR, 1)  # p never delivered: q may be asked
    inflight.claim("q", AUTHOR, 2)
    inflight.claim("q", AUTHOR, 3)
    assert not inflight.claim("q", AUTHOR, 4)  # bounded
    inflight.drop_peer("q")
    assert len(inflight) == 0 and inflight.claim("p", AUTHOR, 4)


def test_pull_batches_cover_the_want_exactly_once():
    want = {AUTHOR: [(1, 100), (150, 150)], SENDER: [(5, 9)]}
    batches = plan_batches(want, batch=16)
    assert all(sum(range_count(r) for r in b.values()) <= 16 for b in batches)
    got = sorted((a, s) for b in batches for a, rs in b.items() for lo, hi in rs for s in range(lo, hi + 1))
    expected = sorted((a, s) for a, rs in want.items() for lo, hi in rs for s in range(lo, hi + 1))
    assert got == expected


def test_pull_respects_the_message_bounds():
    want = {AUTHOR: [(2 * i + 1, 2 * i + 1) for i in range(MAX_RANGES * 2)]}
    first = plan_batches(want, batch=10_000)[0]
    assert len(first[AUTHOR]) == MAX_RANGES


def test_pull_leaves_packets_asked_elsewhere_and_requeues_only_on_progress():
    inflight = Inflight()
    other = Pull(peer="q", want={AUTHOR: [(1, 2)]}, inflight=inflight, batch=8)
    assert other.next_batch() == {AUTHOR: [(1, 2)]}
    pull = Pull(peer="p", want={AUTHOR: [(1, 6)]}, inflight=inflight, batch=3)
    assert pull.next_batch() == {AUTHOR: [(3, 5)]}  # 1-2 are q's
    assert pull.covers(AUTHOR, 3) and not pull.covers(AUTHOR, 1)
    pull.received(AUTHOR, 3)
    pull.finish_batch(more=True)  # 4 and 5 did not fit: asked again
    assert pull.next_batch() == {AUTHOR: [(4, 6)]}
    pull.finish_batch(more=True)  # nothing came: the pull ends instead of looping
    assert pull.next_batch() == {} and pull.remaining() == 0


def test_a_huge_advertised_range_costs_nothing_until_asked():
    pull = Pull(peer="p", want={AUTHOR: [(1, 2 ** 52)]}, inflight=Inflight(), batch=4)
    assert pull.remaining() == 2 ** 52
    assert pull.next_batch() == {AUTHOR: [(1, 4)]}
    pull.finish_batch(more=False)
    assert pull.next_batch() == {AUTHOR: [(5, 8)]}
    with pytest.raises(RuntimeError):
        pull.next_batch()  # one batch at a time
