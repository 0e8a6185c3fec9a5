"""The peer book: who we know, how far we trust them, and what that allows.

The policy table (docs/design.md section 2) lives here and only here: every service
asks :meth:`PeerBook.check` before acting for a peer.
"""
from __future__ import annotations

import logging
import threading
import time
from enum import Enum
from typing import Callable

from core import events as ev
from core.errors import (AmbiguousPeer, BadRequest, PeerBanned, RefusedByPolicy, UnknownPeer)
from core.events import EventBus
from core.identity import is_peer_id
from core.store import PeerRecord, Store

log = logging.getLogger("covey.peers")

DEFAULT_BAN_THRESHOLD = 0.2
START_REPUTATION = 0.5
REWARD = 0.01
PENALTY = 0.1
SEEN_WRITE_INTERVAL = 10.0  # seconds between last_seen writes per peer
MAX_UNKEPT = 256             # peers the user never acted on (strangers that connected)
UNKEPT_TTL = 7 * 86400.0     # ... forgotten after this long without being seen
MIN_PREFIX = 4
MAX_NAME = 64
MAX_ADDRESS = 512
MODES = ("asymmetric", "symmetric", "none")
SOURCES = ("manual", "lan", "bootstrap", "inbound")


class Tier(str, Enum):
    CORE = "core"
    SANDBOX = "sandbox"
    EXTERNAL = "external"
    UNKNOWN = "unknown"


class Capability(str, Enum):
    CONNECT = "connect"
    CHAT = "chat"
    CONTACT_REQUEST = "contact_request"
    KNOWLEDGE_ACCEPT = "knowledge_accept"
    KNOWLEDGE_PROPAGATE = "knowledge_propagate"
    QUERY = "query"
    LEARN_CONTRIBUTE = "learn_contribute"
    DELEGATE_TASKS = "delegate_tasks"
    RELAY = "relay"


C = Capability
# docs/design.md section 2. UNKNOWN peers may connect (rate-limited by the transport)
# and send a contact request, nothing else; banned peers may do nothing.
POLICY: dict[Tier, frozenset[Capability]] = {
    Tier.CORE: frozenset(Capability),
    Tier.SANDBOX: frozenset({C.CONNECT, C.CHAT, C.CONTACT_REQUEST, C.KNOWLEDGE_ACCEPT, C.QUERY,
                             C.LEARN_CONTRIBUTE}),
    Tier.EXTERNAL: frozenset({C.CONNECT, C.CHAT, C.CONTACT_REQUEST, C.QUERY}),
    Tier.UNKNOWN: frozenset({C.CONNECT, C.CONTACT_REQUEST}),
}
# The capability a peer needs to send each message type of the protocol. The node
# checks it before any handler runs (types not listed take what their handler
# declared in ``Node.on_message``, CONNECT by default; a type without a handler is refused).
MESSAGE_CAPABILITIES: dict[str, Capability] = {
    "ping": C.CONNECT,
    "error": C.CONNECT,
    "ml.join": C.LEARN_CONTRIBUTE,       # worker -> coordinator
    "ml.update": C.LEARN_CONTRIBUTE,
    "ml.info": C.LEARN_CONTRIBUTE,
    "ml.invite": C.LEARN_CONTRIBUTE,     # coordinator -> worker: workers only work for peers
    "ml.round": C.LEARN_CONTRIBUTE,      # that may contribute (core, sandbox)
    "ml.sa.roster": C.LEARN_CONTRIBUTE,
    "ml.sa.relay": C.LEARN_CONTRIBUTE,
    "ml.sa.unmask": C.LEARN_CONTRIBUTE,
    "ml.agg.round": C.LEARN_CONTRIBUTE,   # coordinator -> group aggregator (two-level learning)
    "ml.agg.update": C.LEARN_CONTRIBUTE,  # worker -> its group's aggregator
    "ml.agg.partial": C.LEARN_CONTRIBUTE,  # aggregator -> coordinator (which also requires CORE)
    "chat.bundle": C.CHAT,               # our prekey bundle: only to peers we chat with
    "chat.msg": C.CHAT,
    "chat.reset": C.CHAT,
    "chat.request": C.CONTACT_REQUEST,   # the one thing an UNKNOWN peer may send
    "know.push": C.KNOWLEDGE_ACCEPT,     # packets we take: CORE, SANDBOX
    "know.ihave": C.KNOWLEDGE_ACCEPT,
    "know.have": C.QUERY,                # pulling and querying ours: CORE, SANDBOX, EXTERNAL
    "know.want": C.QUERY,
    "know.query": C.QUERY,
}


def message_capability(msg_type: str, declared: Capability | str | None = None) -> Capability:
    """The capability needed to send ``msg_type``: the table's, else ``declared``, else CONNECT.

    A declaration that contradicts the table is a programming error (ValueError)."""
    listed = MESSAGE_CAPABILITIES.get(msg_type)
    if declared is not None:
        declared = Capability(declared)
        if listed is not None and declared is not listed:
            raise ValueError(f"{msg_type} needs {listed.value} per the policy table, not {declared.value}")
        return declared
    return listed or C.CONNECT


# Least trusted first: used to suggest the tier that would allow a capability.
TIER_ORDER = (Tier.UNKNOWN, Tier.EXTERNAL, Tier.SANDBOX, Tier.CORE)

_DOING = {
    C.CONNECT: "connect",
    C.CHAT: "chat",
    C.CONTACT_REQUEST: "send a contact request",
    C.KNOWLEDGE_ACCEPT: "have its knowledge accepted",
    C.KNOWLEDGE_PROPAGATE: "have its knowledge propagated",
    C.QUERY: "query our knowledge or models",
    C.LEARN_CONTRIBUTE: "contribute learning updates",
    C.DELEGATE_TASKS: "delegate tasks",
    C.RELAY: "relay or hold our messages",
}


def parse_tier(tier: Tier | str) -> Tier:
    """A Tier from a Tier or its name (any case); BadRequest listing the valid ones otherwise."""
    if isinstance(tier, Tier):
        return tier
    try:
        return Tier(str(tier).strip().lower())
    except ValueError:
        valid = ", ".join(t.value for t in TIER_ORDER[::-1])
        raise BadRequest(f"unknown trust tier {tier!r}: choose one of {valid}") from None


def allows(tier: Tier, banned: bool, capability: Capability) -> bool:
    """Whether a peer of ``tier`` (banned or not) may do ``capability``."""
    if banned:
        return False
    return Capability(capability) in POLICY[parse_tier(tier)]


def lowest_tier_allowing(capability: Capability) -> Tier:
    """The least trusted tier that allows ``capability``."""
    return next(t for t in TIER_ORDER if capability in POLICY[t])


def _record_tier(rec: PeerRecord) -> Tier:
    """The record's tier; a value this version does not know counts as UNKNOWN (least trust)."""
    try:
        return Tier(rec.tier)
    except ValueError:
        log.warning("peer %s has an unknown tier %r in the database; treating it as unknown",
                    rec.id[:16], rec.tier)
        return Tier.UNKNOWN


def _short(rec: PeerRecord) -> str:
    return f"{rec.name} ({rec.id[:12]})" if rec.name else rec.id[:12]


def _clean_name(name: str) -> str:
    """Printable, single-line, bounded: names may come from the network."""
    if not isinstance(name, str):
        raise BadRequest("a peer name must be text")
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()
    return cleaned[:MAX_NAME]


def keeps_connected(rec: PeerRecord) -> bool:
    """Whether the node should keep redialling this peer: only peers the user acted on
    (added, pinned, trusted), never strangers that merely connected or were heard on the LAN."""
    return rec.kept and not rec.banned and bool(rec.address)


class PeerBook:
    """Peers, trust tiers, bans and reputation, persisted in the Store.

    Rows the user never acted on (``kept`` false: strangers that connected to us) are
    bounded: at most ``max_unkept`` of them, the least recently seen evicted first, and
    each forgotten ``unkept_ttl`` seconds after it was last seen.
    """

    def __init__(self, store: Store, events: EventBus, ban_threshold: float = DEFAULT_BAN_THRESHOLD,
                 *, seen_interval: float = SEEN_WRITE_INTERVAL,
                 clock: Callable[[], float] = time.time, max_unkept: int = MAX_UNKEPT,
                 unkept_ttl: float = UNKEPT_TTL, in_use: Callable[[str], bool] | None = None):
        if not 0.0 <= ban_threshold < 1.0:
            raise ValueError("ban_threshold must be in [0, 1)")
        if max_unkept < 1 or not unkept_ttl > 0:
            raise ValueError("max_unkept must be >= 1 and unkept_ttl > 0")
        self.store = store
        self.events = events
        self.ban_threshold = ban_threshold
        self.seen_interval = seen_interval
        self.max_unkept = max_unkept
        self.unkept_ttl = unkept_ttl
        self._in_use = in_use or (lambda peer_id: False)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_seen_write: dict[str, tuple[float, str | None]] = {}
        # Write-through cache of the peers table: the node is its only writer, and the
        # hot paths (policy checks per message, reputation per update) should not query SQLite.
        self._cache: dict[str, PeerRecord] | None = None
        self.version = 0   # moves on every write: what was resolved at one version holds until then

    # -- reading -------------------------------------------------------------
    def _records(self) -> dict[str, PeerRecord]:
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    self._cache = {rec.id: rec for rec in self.store.list_peers()}
        return self._cache

    def get(self, peer_id: str) -> PeerRecord | None:
        rec = self._records().get(peer_id)
        return rec.copy() if rec is not None else None  # a copy: callers may change it

    def list(self) -> list[PeerRecord]:
        """All peers, oldest first."""
        return [r.copy() for r in sorted(self._records().values(), key=lambda r: (r.added_at, r.id))]

    def _save(self, rec: PeerRecord) -> None:
        self.store.upsert_peer(rec)
        self._records()[rec.id] = rec.copy()
        self.version += 1

    def _require(self, peer_id: str) -> PeerRecord:
        rec = self.get(peer_id)
        if rec is None:
            raise UnknownPeer(f"no peer {peer_id[:16]!r} in the peer book; see `covey peers list`",
                              peer=peer_id)
        return rec

    def resolve(self, ref: str) -> PeerRecord:
        """The peer named by a full id, a unique id prefix (>= 4 hex digits) or an exact name."""
        text = (ref or "").strip()
        if not text:
            raise UnknownPeer("no peer given: use an id, an id prefix or a name")
        lowered = text.lower()
        if is_peer_id(lowered):
            return self._require(lowered)
        # Matched on the records themselves (a name is resolved on every `covey chat send NAME`):
        # only the match is copied, not the whole book.
        records = self._records().values()
        oldest_first = lambda r: (r.added_at, r.id)  # noqa: E731  (the order of list())
        matches = {p.id: p for p in sorted((r for r in records if r.name == text), key=oldest_first)}
        is_hex = all(ch in "0123456789abcdef" for ch in lowered)
        if is_hex and len(lowered) >= MIN_PREFIX:
            matches.update({p.id: p for p in sorted((r for r in records if r.id.startswith(lowered)),
                                                    key=oldest_first)})
        if len(matches) == 1:
            return next(iter(matches.values())).copy()
        if matches:
            listed = ", ".join(_short(p) for p in matches.values())
            raise AmbiguousPeer(f"{text!r} matches {len(matches)} peers: {listed}; give more of the id",
                                candidates=sorted(matches))
        hint = (f" (an id prefix needs at least {MIN_PREFIX} hex digits)"
                if is_hex and len(lowered) < MIN_PREFIX else "")
        raise UnknownPeer(f"no peer matches {text!r}{hint}; see `covey peers list`")

    def tier_of(self, peer_id: str) -> Tier:
        """The peer's tier; UNKNOWN for peers not in the book."""
        rec = self.get(peer_id)
        return _record_tier(rec) if rec else Tier.UNKNOWN

    # -- policy --------------------------------------------------------------
    def check(self, peer_id: str, capability: Capability) -> None:
        """Raise unless the peer may do ``capability``.

        PeerBanned for banned peers, RefusedByPolicy when the tier does not
        allow it. A peer absent from the book counts as UNKNOWN for what
        UNKNOWN may do (connect, contact request) and raises UnknownPeer otherwise.
        """
        capability = Capability(capability)
        rec = self.get(peer_id)
        if rec is None:
            if allows(Tier.UNKNOWN, False, capability):
                return
            raise UnknownPeer(f"peer {peer_id[:16]} is not in the peer book and may not "
                              f"{_DOING[capability]}; add it with `covey peers add`", peer=peer_id)
        if rec.banned:
            raise PeerBanned(f"peer {_short(rec)} is banned; lift it with "
                             f"`covey peers unban {rec.id[:16]}`", peer=rec.id)
        tier = _record_tier(rec)
        if not allows(tier, False, capability):
            needed = lowest_tier_allowing(capability)
            raise RefusedByPolicy(
                f"peer {_short(rec)} (tier {tier.value}) may not {_DOING[capability]}; raise its "
                f"tier with `covey peers trust {rec.id[:16]} {needed.value}`",
                peer=rec.id, tier=tier.value, capability=capability.value)

    # -- writing -------------------------------------------------------------
    def add_or_update(self, peer_id: str, *, name: str | None = None, address: str | None = None,
                      source: str | None = None, pinned: bool | None = None,
                      mode: str | None = None, kept: bool | None = None) -> PeerRecord:
        """Add a peer (as UNKNOWN) or update the given fields of a known one; never changes the tier.

        ``source`` records how we first learned of the peer and is kept on updates.
        ``kept=True`` marks a user's decision (a row that is never evicted); a new row
        without it may evict the least recently seen row the user never acted on.
        """
        if not is_peer_id(peer_id):
            raise BadRequest(f"not a peer id (64 lowercase hex digits): {peer_id!r:.80}")
        if address is not None and (not isinstance(address, str) or len(address) > MAX_ADDRESS):
            raise BadRequest(f"a peer address must be text of at most {MAX_ADDRESS} characters")
        if mode is not None and mode not in MODES:
            raise BadRequest(f"unknown encryption mode {mode!r}: choose one of {', '.join(MODES)}")
        if source is not None and source not in SOURCES:
            raise BadRequest(f"unknown peer source {source!r}: choose one of {', '.join(SOURCES)}")
        clean_name = _clean_name(name) if name is not None else None
        with self._lock:
            rec = self.get(peer_id)
            created = rec is None
            if rec is None:
                rec = PeerRecord(id=peer_id, tier=Tier.UNKNOWN.value, reputation=START_REPUTATION,
                                 source=source or "manual", added_at=self._clock())
                if not kept:
                    self._make_room()
            if clean_name:
                rec.name = clean_name
            if address is not None:
                rec.address = address
            if pinned is not None:
                rec.pinned = bool(pinned)
            if mode is not None:
                rec.mode = mode
            if kept:
                rec.kept = True
            self._save(rec)
        if created:
            # ``peer_name``: ``name`` is EventBus.emit's own first parameter.
            self.events.emit(ev.PEER_ADDED, peer=peer_id, peer_name=rec.name,
                             address=rec.address, source=rec.source, tier=rec.tier)
        return rec.copy()

    def set_tier(self, peer_id: str, tier: Tier | str) -> PeerRecord:
        """Set the peer's trust tier (the user's decision); emits TIER_CHANGED when it changes."""
        new = parse_tier(tier)
        with self._lock:
            rec = self._require(peer_id)
            previous, was_kept = rec.tier, rec.kept
            rec.tier, rec.kept = new.value, True
            if previous != new.value or not was_kept:
                self._save(rec)
        if previous != new.value:
            log.info("peer %s: tier %s -> %s", peer_id[:16], previous, new.value)
            self.events.emit(ev.TIER_CHANGED, peer=peer_id, tier=new.value, previous=previous)
        return rec

    def ban(self, peer_id: str, reason: str = "banned by the user") -> PeerRecord:
        """Ban the peer until the user lifts it; emits PEER_BANNED."""
        with self._lock:
            rec = self._require(peer_id)
            if rec.banned and rec.kept:
                return rec
            was_banned, rec.banned, rec.kept = rec.banned, True, True
            self._save(rec)
            if was_banned:
                return rec
        log.warning("peer %s banned: %s", peer_id[:16], reason)
        self.events.emit(ev.PEER_BANNED, peer=peer_id, reason=reason, reputation=rec.reputation)
        return rec

    def unban(self, peer_id: str) -> PeerRecord:
        """Lift a ban; the reputation is raised above the threshold so it is not re-banned at once."""
        with self._lock:
            rec = self._require(peer_id)
            previous_rep = rec.reputation
            was_banned = rec.banned
            rec.banned, rec.kept = False, True
            rec.reputation = round(max(rec.reputation, self.ban_threshold + 0.1), 6)
            self._save(rec)
        if was_banned:
            self.events.emit(ev.PEER_UNBANNED, peer=peer_id, reputation=rec.reputation)
        if rec.reputation != previous_rep:
            self.events.emit(ev.REPUTATION_CHANGED, peer=peer_id, reputation=rec.reputation,
                             previous=previous_rep, reason="ban lifted")
        return rec

    def remove(self, peer_id: str) -> None:
        """Forget the peer entirely (including a ban); emits PEER_REMOVED."""
        if not self._forget(peer_id):
            raise UnknownPeer(f"no peer {peer_id[:16]!r} in the peer book", peer=peer_id)
        self.events.emit(ev.PEER_REMOVED, peer=peer_id)

    def _forget(self, peer_id: str) -> bool:
        with self._lock:
            self._records().pop(peer_id, None)
            self.version += 1
            self._last_seen_write.pop(peer_id, None)
            return self.store.delete_peer(peer_id)

    # -- bounds on rows nobody asked for -------------------------------------------
    def unkept_count(self) -> int:
        return sum(1 for r in self._records().values() if not r.kept)

    def expire(self) -> int:
        """Forget rows the user never acted on that were not seen for ``unkept_ttl``; returns how many."""
        cutoff = self._clock() - self.unkept_ttl
        with self._lock:
            stale = [r.id for r in self._records().values()
                     if not r.kept and (r.last_seen or r.added_at) < cutoff and not self._in_use(r.id)]
            for peer_id in stale:
                self._forget(peer_id)
        for peer_id in stale:
            self.events.emit(ev.PEER_REMOVED, peer=peer_id, reason="expired")
        if stale:
            log.info("forgot %d peers not seen for %.0f days that were never added or trusted",
                     len(stale), self.unkept_ttl / 86400)
        return len(stale)

    def _make_room(self) -> None:
        """Called under the lock before a new unkept row: expire, then evict down to the cap.

        The victim is the least recently seen unkept row, preferring ones not connected
        and not banned (a banned stranger's row goes last, so its ban lasts as long as it can).
        """
        self.expire()
        while True:
            unkept = [r for r in self._records().values() if not r.kept]
            if len(unkept) < self.max_unkept:
                return
            victim = min(unkept, key=lambda r: (self._in_use(r.id), r.banned, r.last_seen or r.added_at))
            self._forget(victim.id)
            log.debug("peer book full of strangers: forgot %s", victim.id[:16])
            self.events.emit(ev.PEER_REMOVED, peer=victim.id, reason="evicted")

    def seen(self, peer_id: str, *, mode: str | None = None) -> None:
        """Note that the peer was just active (and its negotiated mode).

        Written at most once per ``seen_interval`` seconds per peer, unless the mode changes.
        """
        now = self._clock()
        with self._lock:
            last = self._last_seen_write.get(peer_id)
            mode_changed = mode is not None and (last is None or last[1] != mode)
            if last is not None and not mode_changed and now - last[0] < self.seen_interval:
                return
            rec = self.get(peer_id)
            if rec is None:
                log.debug("seen() for a peer not in the book: %s", peer_id[:16])
                return
            rec.last_seen = now
            if mode is not None:
                if mode not in MODES:
                    raise BadRequest(f"unknown encryption mode {mode!r}")
                rec.mode = mode
            self._save(rec)
            self._last_seen_write[peer_id] = (now, rec.mode)

    def record_outcomes(self, peer_ids, accepted: bool, reason: str = "") -> None:
        """:meth:`record_outcome` for each of ``peer_ids`` (one unknown to the book is skipped), written
        in one transaction: a round's accepted updates cost one commit, not one each."""
        with self._lock, self.store.transaction():
            for peer_id in peer_ids:
                try:
                    self.record_outcome(peer_id, accepted, reason)
                except UnknownPeer as exc:
                    log.debug("no reputation change for %s: %s", peer_id[:12], exc)

    def record_outcome(self, peer_id: str, accepted: bool, reason: str = "") -> float:
        """Adjust reputation (+0.01 accepted, -0.1 rejected, within [0, 1]); returns the new value.

        At or below the ban threshold the peer is banned (PEER_BANNED with the reason). A
        peer already at the bound (1.0, or 0.0 and banned) is not written again, and no
        REPUTATION_CHANGED is emitted for it: nothing changed.
        """
        with self._lock:
            rec = self._require(peer_id)
            previous = rec.reputation
            delta = REWARD if accepted else -PENALTY
            # Rounded so that 0.5 - 3 * 0.1 lands exactly on 0.2 and bans as it should.
            rec.reputation = round(min(1.0, max(0.0, previous + delta)), 6)
            newly_banned = not rec.banned and rec.reputation <= self.ban_threshold
            if rec.reputation == previous and not newly_banned:
                return previous
            if newly_banned:
                rec.banned = True
            self._save(rec)
        self.events.emit(ev.REPUTATION_CHANGED, peer=peer_id, reputation=rec.reputation,
                         previous=previous, accepted=accepted, reason=reason)
        if newly_banned:
            why = (f"reputation {rec.reputation:.2f} reached the ban threshold "
                   f"{self.ban_threshold:.2f}" + (f" after: {reason}" if reason else ""))
            log.warning("peer %s banned: %s", peer_id[:16], why)
            self.events.emit(ev.PEER_BANNED, peer=peer_id, reason=why, reputation=rec.reputation,
                             automatic=True)
        return rec.reputation
