"""The knowledge engine: everything the service does with a packet or a know.* body, minus I/O.

The service looks up the peer's tier, hands the message body here and sends
what comes back (a reply body, or a Forward plan). Order of the intake checks,
cheapest first, so a flood costs little: policy (before anything is parsed),
the peer's byte budget, the seen-set on the claimed id, hash of the bytes
(id mismatch), the store (duplicate), decode and bounds, the signature, the
future-time rule, solicitation / the author's rate limit, then the insert
(equivocation, store bounds).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.errors import (
    CoveyError,
    InvalidSignature,
    MessageTooLarge,
    RefusedByPolicy,
    StaleMessage,
)
from core.peers import Tier

from . import gossip
from . import protocol as proto
from .db import SELF_TIER, KnowledgeDB
from .gossip import Buckets, Counters, Forward, Inflight, Pull, SeenSet
from .protocol import Equivocation, Packet, StoreFull

log = logging.getLogger("covey.knowledge")

AUTHOR_RATE = 20.0            # unsolicited packets per second per author ...
AUTHOR_BURST = 200.0          # ... with this burst
PEER_BYTES_RATE = 8 << 20     # bytes per second a peer may send us ...
PEER_BYTES_BURST = 64 << 20   # ... with this burst (a 16 MiB packet always fits)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one incoming packet."""
    status: str                 # "accepted" | "duplicate" | "rejected"
    reason: str | None = None   # for "rejected": one of gossip.REASONS
    message: str = ""
    packet: Packet | None = None
    forward: Forward = field(default_factory=Forward)

    @property
    def peer_fault(self) -> bool:
        """True if the sending peer is to blame (the service lowers its reputation)."""
        return self.reason in gossip.PEER_FAULTS


def _reason(exc: CoveyError) -> str:
    named = exc.details.get("reason")
    if named in gossip.REASONS:
        return named
    for kind, reason in ((MessageTooLarge, "too_large"), (InvalidSignature, "invalid_signature"),
                         (StaleMessage, "from_future"), (Equivocation, "equivocation"),
                         (StoreFull, "store_full"), (RefusedByPolicy, "refused_by_policy")):
        if isinstance(exc, kind):
            return reason
    return "malformed"


class _Reject(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class KnowledgeEngine:
    """Intake, publishing and answers for one node's knowledge store."""

    def __init__(self, db: KnowledgeDB, self_id: str, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 author_rate: float = AUTHOR_RATE, author_burst: float = AUTHOR_BURST,
                 peer_bytes_rate: float = PEER_BYTES_RATE, peer_bytes_burst: float = PEER_BYTES_BURST,
                 pull_batch: int = 64):
        self.db = db
        self.self_id = self_id
        self.clock = clock
        self.counters = Counters(rows=db.load_counters())
        self.seen = SeenSet(clock=monotonic)
        self.authors = Buckets(author_rate, author_burst, clock=monotonic)
        self.peer_bytes = Buckets(peer_bytes_rate, max(peer_bytes_burst, proto.MAX_PACKET_BYTES),
                                  clock=monotonic)
        self.inflight = Inflight(clock=monotonic)
        self.pull_batch = pull_batch

    # -- publishing ------------------------------------------------------------
    def publish(self, identity, peers: Iterable[tuple[str, Tier | str, bool]] = (), **fields) -> tuple[Packet, Forward]:
        """Sign and keep a new packet of ours; returns it and where to push it (eagerly)."""
        if identity.id != self.self_id:
            raise ValueError("publish with this node's own identity")
        packet = proto.create(identity, self.db.next_seq(self.self_id), now=self.clock(), **fields)
        self.db.insert(packet, hops=0, received_from=None, tier=SELF_TIER, relay=True, now=self.clock())
        self.seen.add(packet.id)
        return packet, gossip.forward_plan(self_id=self.self_id, author=self.self_id, from_peer=None,
                                           hops=0, relay=True, peers=peers)

    # -- intake ----------------------------------------------------------------
    def admit(self, peer: str, tier: Tier | str, banned: bool, body: Any, *, pull: Pull | None = None,
              peers: Iterable[tuple[str, Tier | str, bool]] = ()) -> Verdict:
        """Run one know.push body (or one reply item, with the ``pull`` that asked for it) through intake.

        ``peers`` are the connected peers (id, tier, banned) for the forward plan.
        Never raises for bad input: the verdict says what happened and why.
        """
        self.counters.add(peer, "received")
        try:
            verdict = self._admit(peer, tier, banned, body, pull, peers)
        except _Reject as rej:
            return self._refuse(peer, rej.reason, str(rej))
        except CoveyError as exc:
            return self._refuse(peer, _reason(exc), str(exc))
        self.counters.add(peer, "accepted" if verdict.status == "accepted" else "duplicates")
        return verdict

    def _refuse(self, peer: str, reason: str, message: str) -> Verdict:
        """Count and log one refused packet; its verdict."""
        self.counters.reject(peer, reason)
        log.info("knowledge from %s refused (%s): %s", peer[:16], reason, message)
        return Verdict("rejected", reason, message)

    def _admit(self, peer, tier, banned, body, pull, peers) -> Verdict:
        if not gossip.may_accept(tier, banned):
            raise _Reject("refused_by_policy", f"knowledge from a peer of tier {Tier(tier).value}"
                          f"{' (banned)' if banned else ''} is not accepted")
        claimed, raw, hops = proto.parse_item(body)
        if not self.peer_bytes.take(peer, len(raw)):
            raise _Reject("peer_over_budget", f"peer {peer[:16]} sent more bytes than its budget allows")
        if claimed in self.seen:
            return Verdict("duplicate", message="seen recently")
        packet = proto.decode(raw, claimed_id=claimed)
        relay = gossip.relayable(tier)
        if self.db.has(packet.id):
            if relay:
                self.db.upgrade(packet.id, hops=hops, received_from=peer, tier=Tier(tier).value)
                self.seen.add(packet.id)
            return Verdict("duplicate", message="already stored")
        packet = proto.verify(packet)
        proto.check_fresh(packet, self.clock())
        if pull is not None:
            if not pull.covers(packet.author, packet.seq):
                raise _Reject("unsolicited", f"reply packet {packet.author[:16]}#{packet.seq} was not asked for")
            pull.received(packet.author, packet.seq)
        elif not self.authors.take(packet.author):
            raise _Reject("rate_limited", f"author {packet.author[:16]} publishes faster than the limit")
        outcome = self.db.insert(packet, hops=hops, received_from=peer, tier=Tier(tier).value,
                                 relay=relay, now=self.clock())
        if relay:  # a packet held as not relayable must reach the store check again (upgrade)
            self.seen.add(packet.id)
        if outcome != "inserted":
            return Verdict("duplicate", message="already stored", packet=packet)
        forward = gossip.forward_plan(self_id=self.self_id, author=packet.author, from_peer=peer,
                                      hops=hops, relay=relay, peers=peers)
        return Verdict("accepted", packet=packet, forward=forward)

    def admit_reply(self, peer: str, tier: Tier | str, banned: bool, body: Any, pull: Pull,
                    peers: Iterable[tuple[str, Tier | str, bool]] = ()) -> tuple[list[Verdict], bool]:
        """Admit a know.want reply for ``pull``; returns the verdicts and the reply's ``more``.

        A malformed reply as a whole is one rejection. Ends the pull's batch.
        """
        try:
            items, more = proto.parse_reply(body)
        except CoveyError as exc:
            self.counters.add(peer, "received")
            self.counters.reject(peer, _reason(exc))
            pull.finish_batch(more=False)
            return [Verdict("rejected", _reason(exc), str(exc))], False
        peers = list(peers)
        verdicts = [self.admit(peer, tier, banned, proto.item(pid, raw, hops), pull=pull, peers=peers)
                    for pid, raw, hops in items]
        pull.finish_batch(more)
        return verdicts, more

    # -- catch-up --------------------------------------------------------------
    def have(self) -> dict:
        """Our know.have body: what we advertise (relayable, contiguous)."""
        return proto.have_body(self.db.have_vector(relay_only=True))

    def start_pull(self, peer: str, tier: Tier | str, banned: bool, have_reply: Any) -> Pull | None:
        """From the peer's know.have (or its reply), the Pull to run; None if we take nothing from it."""
        if not gossip.may_accept(tier, banned):
            return None
        remote = proto.parse_have(have_reply)
        return self._pull(peer, self.db.missing(remote).want)

    def on_ihave(self, peer: str, tier: Tier | str, banned: bool, body: Any) -> Pull | None:
        """A lazy announcement: the Pull for what it names that we lack (None if nothing)."""
        if not gossip.may_accept(tier, banned):
            return None
        announced = proto.parse_ranges(body, "know.ihave")
        want = {}
        for author, ranges in announced.items():
            lacking = [r for lo, hi in ranges for r in self.db.lacking(author, lo, hi)]
            if lacking:
                want[author] = lacking
        return self._pull(peer, want) if want else None

    def _pull(self, peer: str, want: proto.Ranges) -> Pull:
        return Pull(peer=peer, want=want, inflight=self.inflight, batch=self.pull_batch,
                    holds=self.db.holds)

    def peer_gone(self, peer: str) -> None:
        """The peer disconnected: what was asked from it may be asked elsewhere."""
        self.inflight.drop_peer(peer)

    # -- answers ---------------------------------------------------------------
    def _may_serve(self, peer: str, tier: Tier | str, banned: bool, what: str) -> None:
        if not gossip.may_query(tier, banned):
            raise RefusedByPolicy(f"peer {peer[:16]} (tier {Tier(tier).value}"
                                  f"{', banned' if banned else ''}) may not {what} our knowledge",
                                  peer=peer, tier=Tier(tier).value)

    def answer_want(self, peer: str, tier: Tier | str, banned: bool, body: Any) -> dict:
        """The reply to a know.want (RefusedByPolicy / MalformedMessage for the connection to report)."""
        self._may_serve(peer, tier, banned, "pull")
        items, more = self.db.serve(proto.parse_ranges(body))
        self.counters.add(peer, "sent", len(items))
        return proto.reply_body(items, more)

    def answer_query(self, peer: str, tier: Tier | str, banned: bool, body: Any) -> dict:
        """The reply to a know.query."""
        self._may_serve(peer, tier, banned, "query")
        items, more = self.db.query(proto.parse_query(body))
        self.counters.add(peer, "sent", len(items))
        return proto.reply_body(items, more)

    def answer_have(self, peer: str, tier: Tier | str, banned: bool, body: Any) -> dict:
        """The reply to a know.have: our vector (the body is checked, then left to start_pull)."""
        self._may_serve(peer, tier, banned, "pull")
        proto.parse_have(body)
        return self.have()

    def sent(self, peer: str, n: int = 1) -> None:
        """Count packets pushed to a peer by the service."""
        self.counters.add(peer, "sent", n)

    def status(self) -> dict:
        """For `covey knowledge status`: counters and store size."""
        return {"packets": self.db.count, "bytes": self.db.bytes, "authors": len(self.db.have_vector(
            relay_only=False)), "counters": self.counters.view()}

    def save(self) -> None:
        """Persist the counters (call on a timer and at stop)."""
        self.db.save_counters(self.counters.rows())

