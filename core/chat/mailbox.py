"""Offline delivery: a CORE peer holds encrypted chat messages for a peer that is away.

Every node plays three roles:

- sender: a link whose peer is not connected (``ChatService.away``) seals
  each waiting data frame, encrypted exactly as the link would send it, in a
  blob signed by us (:func:`core.signed.seal`, kind ``chat-mailbox``, body
  ``{"to", "s": session id, "w": ratchet wire, "ttl"}``) and puts it at a
  connected peer we hold as CORE (once per frame). The frame goes under a
  session the recipient can open even after a restart (its persisted
  prekeys; :meth:`Link.encrypt_away`), started from a spare bundle the link
  keeps while the peer is connected or, when it has none (our node started
  while the peer was away), from the peer's bundle remembered in the
  database (:mod:`core.chat.bundles`). The link keeps the frames too and
  resends them when the peer is back: the recipient's delivery sequence
  numbers make it exactly once.
- mailbox: accepts blobs only from peers it holds as CORE (``RELAY``) for a
  recipient it knows and would chat with, admitted by :class:`core.admission.Admission`
  (shape, signer is the sender, authorisation and room, clock, signature,
  replay). Each is at most ``MAX_BLOB`` bytes, lives ``ttl`` seconds (at most
  ``MAX_TTL``, default ``DEFAULT_TTL``), within bounded counts and bytes per
  recipient and in total; memory only. It tells the recipient (``notify``)
  when it connects or when a blob arrives for it while connected, hands the
  blobs over on ``fetch`` and forgets each once the recipient acknowledges it.
  It never sees plaintext.
- recipient: on ``notify`` from a peer it holds as CORE it fetches, checks
  each blob (signature, addressed to us, not expired, not seen before, a
  sender it chats with) and feeds it to the link of its signer, then acks.

Wire (transport message types): ``chat.mbox.put`` request ``{"blob"}`` ->
``{"id", "expires"}`` (RELAY); ``chat.mbox.fetch`` request ``{}`` ->
``{"blobs": [{"i", "b"}], "more"}`` (CHAT); ``chat.mbox.ack`` one-way
``{"ids"}`` (CHAT); ``chat.mbox.notify`` one-way ``{}`` (RELAY).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from core.admission import Admission
from core.errors import CoveyError, InvalidSignature, MalformedMessage, MessageTooLarge, UnknownPeer
from core.identity import is_peer_id
from core.net.limits import LogLimiter
from core.peers import Capability, allows
from core.signed import seal, verify_only

from core.chat import protocol as proto
from core.chat.background import BackgroundTasks
from core.chat.bundles import Bundles
from core.chat.delivery import Data
from core.chat.errors import BlobExpired, ForgedSender, MailboxFull, ReplayedMessage

log = logging.getLogger("covey.chat.mailbox")

KIND = "chat-mailbox"
PUT, FETCH, ACK, NOTIFY = "chat.mbox.put", "chat.mbox.fetch", "chat.mbox.ack", "chat.mbox.notify"
MAX_BLOB = 1 << 20                 # bytes of ciphertext in one blob
DEFAULT_TTL = 7 * 24 * 3600
MAX_TTL = DEFAULT_TTL
PER_RECIPIENT_COUNT = 1000
PER_RECIPIENT_BYTES = 16 << 20
TOTAL_COUNT = 10_000
TOTAL_BYTES = 128 << 20
MAX_RECIPIENTS = 256
FETCH_COUNT, FETCH_BYTES = 128, 4 << 20   # one fetch reply at most
FETCH_ROUNDS = 64                  # fetches in one hand-over at most (then wait for the next notify)
SEEN = 8192                        # (signer, nonce) of opened blobs remembered against replays
REQUEST_TIMEOUT = 30.0
RETRY = 30.0                       # seconds before a refused deposit is tried again
SPARE_RETRY = 60.0                 # seconds between two failed spare-bundle fetches for a peer
_BLOB_OVERHEAD = 256               # envelope fields around the ciphertext, counted against the quota
_BODY = frozenset({"to", "s", "w", "ttl"})


@dataclass(frozen=True)
class Blob:
    """One held blob (memory only)."""
    id: int
    sender: str
    envelope: dict
    size: int
    expires: float


def parse_body(body: dict) -> tuple[str, bytes, bytes, int]:
    """(recipient, session id, wire, ttl) of a blob's body; MalformedMessage/MessageTooLarge if bad."""
    if set(body) != _BODY:
        raise MalformedMessage("mailbox blob has missing or unexpected fields")
    to, sid, wire, ttl = body["to"], body["s"], body["w"], body["ttl"]
    if not is_peer_id(to):
        raise MalformedMessage("mailbox blob: the recipient is not a peer id")
    if not isinstance(sid, bytes) or len(sid) != proto.SID:
        raise MalformedMessage(f"mailbox blob: session id must be {proto.SID} bytes")
    if not isinstance(wire, bytes):
        raise MalformedMessage("mailbox blob: the ciphertext must be bytes")
    if len(wire) > MAX_BLOB:
        raise MessageTooLarge(f"mailbox blob of {len(wire)} bytes exceeds {MAX_BLOB}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_TTL:
        raise MalformedMessage(f"mailbox blob: ttl must be 1..{MAX_TTL} seconds")
    return to, sid, wire, ttl


class Held:
    """The blobs a mailbox holds, per recipient, bounded; no I/O, the caller passes ``now``."""

    def __init__(self, *, per_count: int = PER_RECIPIENT_COUNT, per_bytes: int = PER_RECIPIENT_BYTES,
                 total_count: int = TOTAL_COUNT, total_bytes: int = TOTAL_BYTES,
                 max_recipients: int = MAX_RECIPIENTS):
        self.per_count, self.per_bytes = per_count, per_bytes
        self.total_count, self.total_bytes = total_count, total_bytes
        self.max_recipients = max_recipients
        self._by: dict[str, "OrderedDict[int, Blob]"] = {}
        self._next = 1
        self.count = 0
        self.bytes = 0

    def __reduce_ex__(self, protocol):
        raise TypeError("a mailbox stays in memory: it cannot be pickled")

    def room(self, recipient: str, size: int) -> None:
        """Raise MailboxFull (saying which bound) unless a blob of ``size`` bytes fits."""
        mine = self._by.get(recipient)
        count = len(mine) if mine else 0
        held = sum(b.size for b in mine.values()) if mine else 0
        if count + 1 > self.per_count:
            raise MailboxFull(f"the mailbox holds {count} blobs for {recipient[:12]}, its limit")
        if held + size > self.per_bytes:
            raise MailboxFull(f"the mailbox holds {held} bytes for {recipient[:12]}; {size} more would "
                              f"pass its limit of {self.per_bytes}")
        if self.count + 1 > self.total_count or self.bytes + size > self.total_bytes:
            raise MailboxFull(f"the mailbox is full ({self.count} blobs, {self.bytes} bytes in total)")
        if mine is None and len(self._by) >= self.max_recipients:
            raise MailboxFull(f"the mailbox holds blobs for {len(self._by)} recipients, its limit")

    def put(self, recipient: str, sender: str, envelope: dict, size: int, expires: float) -> Blob:
        self.room(recipient, size)
        blob = Blob(self._next, sender, envelope, size, expires)
        self._next += 1
        self._by.setdefault(recipient, OrderedDict())[blob.id] = blob
        self.count += 1
        self.bytes += size
        return blob

    def batch(self, recipient: str, now: float, *, max_count: int = FETCH_COUNT,
              max_bytes: int = FETCH_BYTES) -> tuple[list[Blob], bool]:
        """The oldest live blobs for ``recipient`` (at least one if any); and whether more wait."""
        self.expire(now)
        out: list[Blob] = []
        size = 0
        mine: dict[int, Blob] = self._by.get(recipient) or {}
        for blob in mine.values():
            if out and (len(out) >= max_count or size + blob.size > max_bytes):
                return out, True
            out.append(blob)
            size += blob.size
        return out, False

    def ack(self, recipient: str, ids) -> int:
        """Forget the blobs ``ids`` held for ``recipient``; returns how many were held."""
        mine = self._by.get(recipient)
        if not mine:
            return 0
        gone = 0
        for blob_id in ids:
            blob = mine.pop(blob_id, None)
            if blob is not None:
                gone += 1
                self._drop(blob)
        if not mine:
            del self._by[recipient]
        return gone

    def expire(self, now: float) -> int:
        """Drop every blob past its time to live (never delivered); returns how many."""
        gone = 0
        for recipient, mine in list(self._by.items()):
            for blob_id in [i for i, b in mine.items() if b.expires <= now]:
                self._drop(mine.pop(blob_id))
                gone += 1
            if not mine:
                del self._by[recipient]
        return gone

    def waiting(self, recipient: str) -> int:
        return len(self._by.get(recipient) or ())

    def summary(self) -> list[dict]:
        """Counts and bytes per recipient (never content)."""
        return [{"recipient": r, "count": len(m), "bytes": sum(b.size for b in m.values()),
                 "next_expiry": min(b.expires for b in m.values())} for r, m in sorted(self._by.items())]

    def _drop(self, blob: Blob) -> None:
        self.count -= 1
        self.bytes -= blob.size


class Mailbox:
    """The three roles of the module docstring for one node; ``chat`` is the ChatService."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.node = chat.node
        self.held = Held()
        self.ttl = DEFAULT_TTL
        self.admission = Admission(self.node, KIND, Capability.RELAY, label="chat mailbox blob", logger=log)
        self.bundles = Bundles(chat)
        self._deposited: dict[str, tuple[bytes, set[int]]] = {}   # peer -> (our epoch, seqs put)
        self._seen: "OrderedDict[tuple[str, bytes], None]" = OrderedDict()
        self._tasks = BackgroundTasks(limit=4 * MAX_RECIPIENTS)   # beyond: the work is dropped, retried later
        self._fetching: set[str] = set()
        self._notifying: set[str] = set()
        self._spare_at: dict[str, float] = {}      # peer -> when a spare-bundle fetch may run again
        self._log_limit = LogLimiter()
        node = self.node
        node.on_message(PUT, self._on_put, capability=Capability.RELAY)
        node.on_message(FETCH, self._on_fetch, capability=Capability.CHAT)
        node.on_message(ACK, self._on_ack, capability=Capability.CHAT)
        node.on_message(NOTIFY, self._on_notify, capability=Capability.RELAY)

    def _spawn(self, coro) -> None:
        self._tasks.spawn(coro)

    async def stop(self) -> None:
        await self._tasks.stop()
        self._deposited.clear()
        await self.bundles.stop()

    def on_connected(self, peer: str) -> None:
        """A peer connected: a mailbox for us may hand over; we may hand over for it; we may deposit;
        its bundle is remembered for when it is away."""
        self.bundles.refresh(peer)
        if self.held.waiting(peer):
            self._notify(peer)
        if self._is_mailbox(peer):
            for link in list(self.chat.links.values()):
                if link.peer != peer and link.out.unacked and not self.chat.connected(link.peer):
                    link.poke()

    def _is_mailbox(self, peer: str) -> bool:
        conn = self.node.connections.get(peer)
        return conn is not None and not conn.closed and Capability.RELAY in conn.limits.allowed

    # -- sender ----------------------------------------------------------------------
    def keep_spare(self, link) -> None:
        """Keep a spare bundle of the link's peer at hand (fetched in the background, rate limited)."""
        peer = link.peer
        now = time.monotonic()
        if link.bundle is not None or self._spare_at.get(peer, 0.0) > now or not self.chat.connected(peer):
            return
        self._spare_at[peer] = now + SPARE_RETRY
        while len(self._spare_at) > 4 * MAX_RECIPIENTS:
            self._spare_at.pop(next(iter(self._spare_at)))

        async def fetch() -> None:
            try:
                await link.keep_spare_bundle()
            except CoveyError as exc:
                log.debug("no spare bundle of %s: %s", peer[:12], exc)
                return
            self._spare_at.pop(peer, None)   # kept, or not kept yet (asked again at the next ack)
        self._spawn(fetch())

    async def deposit(self, link) -> float | None:
        """Put every waiting frame of ``link`` not put yet at a mailbox; returns when to try again."""
        peer = link.peer
        box = next((p for p in sorted(self.node.connected_peers()) if p != peer and self._is_mailbox(p)), None)
        if box is None:
            return None        # a mailbox that connects pokes the links (on_connected)
        epoch, done = self._deposited.get(peer, (b"", set()))
        if epoch != link.out_epoch:
            epoch, done = link.out_epoch, set()
            self._deposited[peer] = (epoch, done)
        waiting = link.out.waiting()
        done &= {seq for seq, _ in waiting}
        base = link.out.base
        for seq, payload in waiting:
            if seq in done:
                continue
            try:
                if link.bundle is None and (link.current is None or not link.current.opens_alone):
                    link.bundle = self.bundles.load(peer)   # no spare: the one remembered (raises why not)
                sid, wire = await link.encrypt_away(proto.encode_data(epoch, Data(seq, payload, 1), base))
                envelope = seal(self.node.identity, KIND, {"to": peer, "s": sid, "w": wire, "ttl": self.ttl})
                await self.node.request(box, PUT, {"blob": envelope}, timeout=REQUEST_TIMEOUT)
            except CoveyError as exc:
                if self._log_limit.allow(peer) is not None:
                    log.warning("chat: cannot leave messages for %s at mailbox %s: %s [%s]",
                                peer[:12], box[:12], exc, exc.code)
                return time.monotonic() + RETRY
            done.add(seq)
        return None

    # -- mailbox ---------------------------------------------------------------------
    def _authorize(self, signer: str, body: dict) -> None:
        """A recipient this node knows and would chat with, and room for the blob (before its
        signature is checked: only shapes are looked at here)."""
        to, wire = body.get("to"), body.get("w")
        rec = self.node.peers.get(to) if isinstance(to, str) and is_peer_id(to) else None
        if rec is None or not allows(rec.tier, rec.banned, Capability.CHAT):
            raise UnknownPeer(f"this mailbox does not hold messages for {str(to)[:16]!r}: not a peer "
                              f"it chats with")
        self.held.expire(time.time())
        self.held.room(rec.id, (len(wire) if isinstance(wire, bytes) else 0) + _BLOB_OVERHEAD)

    def _on_put(self, peer: str, body: dict) -> dict:
        envelope = body.get("blob")
        if not isinstance(envelope, dict):
            raise MalformedMessage("a mailbox put carries a signed blob")
        admitted = self.admission.admit(peer, envelope, authorize=self._authorize,
                                        validate=lambda _signer, b: parse_body(b))
        to, _sid, wire, ttl = admitted.value
        now = time.time()
        blob = self.held.put(to, peer, envelope, len(wire) + _BLOB_OVERHEAD, now + min(ttl, MAX_TTL))
        log.debug("holding blob %d from %s for %s (%d bytes)", blob.id, peer[:12], to[:12], blob.size)
        if to in self.node.connected_peers():
            self._notify(to)
        return {"id": blob.id, "expires": blob.expires}

    def _notify(self, peer: str) -> None:
        if peer in self._notifying:
            return
        self._notifying.add(peer)

        async def notify() -> None:
            try:
                await self.node.send(peer, NOTIFY, {})
            except CoveyError as exc:
                log.debug("mailbox notice to %s not sent: %s", peer[:12], exc)
            finally:
                self._notifying.discard(peer)
        self._spawn(notify())

    def _on_fetch(self, peer: str, body: dict) -> dict:
        blobs, more = self.held.batch(peer, time.time())
        return {"blobs": [{"i": b.id, "b": b.envelope} for b in blobs], "more": more}

    def _on_ack(self, peer: str, body: dict) -> None:
        ids = body.get("ids")
        if not isinstance(ids, list) or len(ids) > FETCH_COUNT or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids):
            self.chat.refused(peer, ACK, MalformedMessage(f"mailbox ack: ids must be at most {FETCH_COUNT} "
                                                          f"integers"))
            return
        gone = self.held.ack(peer, ids)
        log.debug("%s took %d blobs", peer[:12], gone)

    def summary(self) -> dict:
        """What this node holds for others: counts and bytes per recipient (never content)."""
        self.held.expire(time.time())
        rows = []
        for row in self.held.summary():
            rec = self.node.peers.get(row["recipient"])
            rows.append({**row, "name": rec.name if rec else "",
                         "next_expiry": _iso(row["next_expiry"])})
        h = self.held
        return {"recipients": rows, "count": h.count, "bytes": h.bytes,
                "limits": {"blob_bytes": MAX_BLOB, "ttl": MAX_TTL, "per_recipient_count": h.per_count,
                           "per_recipient_bytes": h.per_bytes, "total_count": h.total_count,
                           "total_bytes": h.total_bytes}}

    # -- recipient -------------------------------------------------------------------
    def _on_notify(self, peer: str, body: dict) -> None:
        if peer not in self._fetching:
            self._fetching.add(peer)
            self._spawn(self._fetch_from(peer))

    async def _fetch_from(self, box: str) -> None:
        try:
            for _ in range(FETCH_ROUNDS):
                reply = await self.node.request(box, FETCH, {}, timeout=REQUEST_TIMEOUT)
                items, more = reply.get("blobs"), reply.get("more")
                if not isinstance(items, list) or len(items) > FETCH_COUNT:
                    raise MalformedMessage("mailbox fetch reply: blobs must be a bounded list")
                ids = []
                for item in items:
                    if not isinstance(item, dict) or isinstance(item.get("i"), bool) \
                            or not isinstance(item.get("i"), int):
                        raise MalformedMessage("mailbox fetch reply: each blob needs an integer id")
                    ids.append(item["i"])
                    try:
                        await self.open(item.get("b"))
                    except CoveyError as exc:   # refused, and acknowledged: the mailbox forgets it
                        self.chat.refused(box, KIND, exc)
                if ids:
                    await self.node.send(box, ACK, {"ids": ids})
                if not items or more is not True:
                    return
        except CoveyError as exc:
            self.chat.refused(box, FETCH, exc)
        finally:
            self._fetching.discard(box)

    async def open(self, envelope, now: float | None = None) -> str:
        """Check one blob addressed to us and feed it to its sender's link; returns the sender.

        Raises InvalidSignature/ForgedSender (not signed by who it names), MalformedMessage,
        BlobExpired, ReplayedMessage, the policy's refusal, or the link's."""
        try:
            signer, body = verify_only(envelope, KIND)
        except InvalidSignature as exc:
            raise ForgedSender(f"mailbox blob: the signature is not its signer's ({exc})") from None
        to, sid, wire, ttl = parse_body(body)
        if to != self.node.identity.id:
            raise MalformedMessage(f"mailbox blob from {signer[:12]} is addressed to {to[:12]}, not to us")
        now = time.time() if now is None else now
        if envelope["ts"] + ttl <= now:
            raise BlobExpired(f"mailbox blob from {signer[:12]} expired {now - envelope['ts'] - ttl:.0f} s "
                              f"ago: dropped unread")
        key = (signer, envelope["nonce"])
        if key in self._seen:
            raise ReplayedMessage(f"mailbox blob from {signer[:12]} was handed over before (replay)")
        self.chat.check_peer(signer)
        await self.chat.link_for(signer).receive(sid, wire)
        self._seen[key] = None
        while len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return signer


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")

