"""Gossip decisions: who we accept from and forward to, dedupe, limits, counters, catch-up.

Pure logic, no I/O: the engine and the service act on what these return.

Policy (DESIGN section 2, through core.peers.allows so the table stays in one place):
- accept packets from peers allowed KNOWLEDGE_ACCEPT (CORE, SANDBOX); others,
  and banned peers, are refused with reason ``refused_by_policy``;
- a packet is relayable if we authored it or it came from a peer allowed
  KNOWLEDGE_PROPAGATE (CORE) at receipt; only relayable packets are forwarded
  (to our other CORE peers, never back to the sender nor to the author) and served;
- peers allowed QUERY (CORE, SANDBOX, EXTERNAL) may pull (know.want) and query.

Live path: the author pushes its packet eagerly to its CORE peers; relays
announce it lazily (know.ihave) and peers pull what they lack, with an
in-flight table so each packet is asked from one peer at a time. In a full
mesh a node then gets a packet at most twice (the author's push, plus one
pull that raced it) instead of once per neighbour.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.peers import Capability, Tier, allows, parse_tier

from .protocol import MAX_HOPS, MAX_RANGE_AUTHORS, MAX_RANGES, Ranges, seqs_to_ranges

SELF = "self"
REASONS = ("refused_by_policy", "malformed", "too_large", "id_mismatch", "invalid_signature",
           "from_future", "equivocation", "hop_limit", "rate_limited", "peer_over_budget",
           "unsolicited", "store_full")
# Rejections that are the sending peer's fault (worth a reputation penalty); the
# others are the author's fault, our limits, or a clock.
PEER_FAULTS = frozenset({"malformed", "too_large", "id_mismatch", "invalid_signature", "hop_limit",
                         "unsolicited"})
COUNTER_NAMES = ("sent", "received", "accepted", "duplicates")
TOTAL = "*"
OTHER = "other"


# -- policy ---------------------------------------------------------------------------
def may_accept(tier: Tier | str, banned: bool) -> bool:
    """Whether packets from this peer are accepted (CORE, SANDBOX; never banned)."""
    return allows(parse_tier(tier), banned, Capability.KNOWLEDGE_ACCEPT)


def may_query(tier: Tier | str, banned: bool) -> bool:
    """Whether this peer may pull or query our relayable packets."""
    return allows(parse_tier(tier), banned, Capability.QUERY)


def relayable(tier_at_receipt: Tier | str) -> bool:
    """Whether a packet that arrived from a peer of this tier (or SELF) may go onward."""
    if tier_at_receipt == SELF:
        return True
    return allows(parse_tier(tier_at_receipt), False, Capability.KNOWLEDGE_PROPAGATE)


@dataclass(frozen=True, slots=True)
class Forward:
    """Where to send an accepted packet: the whole packet (eager) or an announcement (lazy)."""
    eager: tuple[str, ...] = ()
    lazy: tuple[str, ...] = ()


def forward_plan(*, self_id: str, author: str, from_peer: str | None, hops: int, relay: bool,
                 peers: Iterable[tuple[str, Tier | str, bool]]) -> Forward:
    """Targets for a packet just accepted (or published: ``from_peer`` None).

    ``peers``: the connected peers as (id, tier, banned). Only CORE peers
    receive forwards; never the sender, the author or ourselves; nothing once
    the packet is at the hop limit or is not relayable.
    """
    if not relay or hops >= MAX_HOPS:
        return Forward()
    skip = {from_peer, author, self_id}
    targets = tuple(p for p, tier, banned in peers
                    if p not in skip and allows(parse_tier(tier), banned, Capability.KNOWLEDGE_PROPAGATE))
    if author == self_id:
        return Forward(eager=targets)
    return Forward(lazy=targets)


# -- dedupe and limits ----------------------------------------------------------------
class SeenSet:
    """Recently seen packet ids with a TTL, bounded (oldest forgotten first)."""

    def __init__(self, max_entries: int = 100_000, ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        if max_entries < 1 or ttl <= 0:
            raise ValueError("max_entries >= 1 and ttl > 0")
        self.max_entries, self.ttl, self._clock = max_entries, ttl, clock
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def _expire(self, now: float) -> None:
        while self._ids:
            expires = next(iter(self._ids.values()))
            if expires > now:
                break
            self._ids.popitem(last=False)

    def __contains__(self, pid: str) -> bool:
        self._expire(self._clock())
        return pid in self._ids

    def add(self, pid: str) -> None:
        now = self._clock()
        self._expire(now)
        self._ids.pop(pid, None)
        self._ids[pid] = now + self.ttl
        while len(self._ids) > self.max_entries:
            self._ids.popitem(last=False)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float):
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate, self.burst, self.tokens, self.stamp = float(rate), float(burst), float(burst), now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, amount: float, now: float) -> bool:
        """Spend ``amount`` tokens if there are enough."""
        self.refill(now)
        if amount > self.tokens:
            return False
        self.tokens -= amount
        return True


class Buckets:
    """One token bucket per key (author or peer), at most ``max_keys`` of them.

    A new key evicts the least recently used bucket only if it has been idle
    long enough to be full again (forgetting it changes nothing); otherwise
    new keys share one overflow bucket, so many keys cannot multiply the rate.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.max_keys, self._clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._overflow = TokenBucket(rate, burst, clock())

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, amount: float = 1.0) -> bool:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                _, oldest = next(iter(self._buckets.items()))
                if now - oldest.stamp < self.burst / self.rate:
                    return self._overflow.take(amount, now)
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        self._buckets.move_to_end(key)
        return bucket.take(amount, now)


# -- counters -------------------------------------------------------------------------
class Counters:
    """sent / received / accepted / duplicates / rejected-by-reason, per peer and in total.

    At most ``max_peers`` peers are tracked one by one; the rest add up under "other".
    """

    def __init__(self, max_peers: int = 1024, rows: dict[str, dict[str, int]] | None = None):
        self.max_peers = max_peers
        self._rows: dict[str, dict[str, int]] = {}
        for peer, values in (rows or {}).items():
            for name, value in values.items():
                self._row(peer)[name] = int(value)

    def _row(self, peer: str) -> dict[str, int]:
        row = self._rows.get(peer)
        if row is None:
            tracked = len(self._rows) - (TOTAL in self._rows) - (OTHER in self._rows)
            if peer not in (TOTAL, OTHER) and tracked >= self.max_peers:
                return self._row(OTHER)
            row = self._rows[peer] = {}
        return row

    def add(self, peer: str, name: str, n: int = 1) -> None:
        if name not in COUNTER_NAMES:
            raise ValueError(f"unknown counter {name!r}")
        self._bump(peer, name, n)

    def reject(self, peer: str, reason: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self._bump(peer, "rejected." + reason, 1)

    def _bump(self, peer: str, name: str, n: int) -> None:
        for key in (peer, TOTAL):
            row = self._row(key)
            row[name] = row.get(name, 0) + n

    def get(self, peer: str, name: str) -> int:
        return self._rows.get(peer, {}).get(name, 0)

    def rows(self) -> dict[str, dict[str, int]]:
        """Flat copy for persistence (``db.save_counters``)."""
        return {peer: dict(values) for peer, values in self._rows.items()}

    def view(self) -> dict:
        """``{"total": {...}, "peers": {peer: {...}}}`` with ``rejected`` as {reason: n}."""
        def shape(values: dict[str, int]) -> dict:
            out: dict[str, int | dict[str, int]] = {name: values.get(name, 0) for name in COUNTER_NAMES}
            out["rejected"] = {k.split(".", 1)[1]: v for k, v in sorted(values.items())
                               if k.startswith("rejected.")}
            return out
        return {"total": shape(self._rows.get(TOTAL, {})),
                "peers": {p: shape(v) for p, v in sorted(self._rows.items()) if p != TOTAL}}


# -- catch-up -------------------------------------------------------------------------
class Inflight:
    """(author, seq) pairs asked from a peer and not yet delivered: each is asked from one peer.

    Entries expire after ``ttl`` seconds (the peer did not deliver: another
    may be asked); bounded by ``max_entries`` (claims beyond it wait).
    """

    def __init__(self, max_entries: int = 65_536, ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_entries, self.ttl, self._clock = max_entries, ttl, clock
        self._asked: OrderedDict[tuple[str, int], tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._asked)

    def _expire(self, now: float) -> None:
        while self._asked:
            _, expires = next(iter(self._asked.values()))
            if expires > now:
                break
            self._asked.popitem(last=False)

    def claim(self, peer: str, author: str, seq: int) -> bool:
        """Mark (author, seq) as asked from ``peer``; False if another peer has it or we are full."""
        now = self._clock()
        self._expire(now)
        key = (author, seq)
        holder = self._asked.get(key)
        if holder is not None:
            return holder[0] == peer
        if len(self._asked) >= self.max_entries:
            return False
        self._asked[key] = (peer, now + self.ttl)
        return True

    def holder(self, author: str, seq: int) -> str | None:
        self._expire(self._clock())
        entry = self._asked.get((author, seq))
        return entry[0] if entry else None

    def release(self, author: str, seq: int) -> None:
        self._asked.pop((author, seq), None)

    def drop_peer(self, peer: str) -> None:
        """Forget what was asked from a peer that went away, so others can be asked."""
        for key in [k for k, (p, _) in self._asked.items() if p == peer]:
            del self._asked[key]


@dataclass
class Pull:
    """One peer's catch-up: the ranges still to pull, handed out in bounded batches.

    ``next_batch`` claims up to ``batch`` seqs in the shared Inflight table
    and returns them as a know.want range map; seqs already asked from
    another peer are left to that peer, and seqs ``holds`` says we already
    store (another pull brought them) are skipped. ``covers`` tells whether a reply
    packet was asked for; ``finish_batch`` releases what did not come. Seqs
    the peer did not deliver are dropped unless the reply said ``more`` and
    brought something (so a pull always ends); the next exchange retries.
    The queue holds ranges, never single seqs, so a huge advertised seq
    costs nothing until it is asked for.
    """
    peer: str
    want: Ranges
    inflight: Inflight
    batch: int = 64
    holds: Callable[[str, int], bool] = lambda author, seq: False  # already stored: never asked
    asked: set[tuple[str, int]] = field(default_factory=set)
    got: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Reversed so that pop() takes the lowest author/seq first.
        self._queue: list[tuple[str, int, int]] = [(a, lo, hi) for a, rs in self.want.items()
                                                   for lo, hi in rs][::-1]

    def remaining(self) -> int:
        return sum(hi - lo + 1 for _, lo, hi in self._queue)

    def next_batch(self) -> Ranges:
        """The next know.want ranges (empty when there is nothing left to ask this peer)."""
        if self.asked:
            raise RuntimeError("finish the current batch first")
        picked: dict[str, list[int]] = {}
        runs: dict[str, int] = {}  # ranges per author so far (a message allows MAX_RANGES)
        while self._queue and len(self.asked) < self.batch:
            author, lo, hi = self._queue.pop()
            seqs = picked.get(author)
            new_run = not seqs or seqs[-1] != lo - 1
            if (seqs is None and len(picked) >= MAX_RANGE_AUTHORS) or \
                    (new_run and runs.get(author, 0) >= MAX_RANGES):
                self._queue.append((author, lo, hi))
                break
            if lo < hi:
                self._queue.append((author, lo + 1, hi))
            if not self.holds(author, lo) and self.inflight.claim(self.peer, author, lo):
                picked.setdefault(author, []).append(lo)
                runs[author] = runs.get(author, 0) + new_run
                self.asked.add((author, lo))
        return {author: seqs_to_ranges(seqs) for author, seqs in picked.items()}

    def covers(self, author: str, seq: int) -> bool:
        return (author, seq) in self.asked

    def received(self, author: str, seq: int) -> None:
        self.got.add((author, seq))
        self.inflight.release(author, seq)

    def finish_batch(self, more: bool) -> None:
        """End the current batch; requeue the undelivered seqs only if ``more`` and some arrived."""
        delivered = self.got & self.asked
        missing = sorted(self.asked - delivered, reverse=True)
        for author, seq in missing:
            self.inflight.release(author, seq)
        if more and delivered:
            self._queue.extend((author, seq, seq) for author, seq in missing)
        self.asked.clear()
        self.got.clear()


def plan_batches(want: Ranges, batch: int = 64) -> list[Ranges]:
    """Split ``want`` into know.want bodies of at most ``batch`` seqs (no in-flight table)."""
    pull = Pull(peer="", want=want, inflight=Inflight(max_entries=1 << 62), batch=batch)
    out: list[Ranges] = []
    while True:
        ranges = pull.next_batch()
        if not ranges:
            return out
        out.append(ranges)
        for author, rs in ranges.items():
            for lo, hi in rs:
                for s in range(lo, hi + 1):
                    pull.received(author, s)
        pull.finish_batch(more=False)
