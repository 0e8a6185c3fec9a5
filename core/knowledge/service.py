"""The knowledge service: the engine's decisions sent over the node's links.

Reached as ``node.service("knowledge")``. Everything that decides (policy,
dedupe, limits, counters, catch-up plans) lives in :mod:`.engine`; this
module only moves bytes and keeps the per-peer work bounded:

- on connect (and every ``sync_interval`` seconds, and when a peer's tier
  rises) we send our ``know.have`` to peers we accept packets from and pull
  the gaps their reply shows, one pull at a time per peer;
- a packet we publish is pushed whole to our CORE peers; a packet we accept
  from a CORE peer is announced (``know.ihave``, coalesced per peer) to our
  other CORE peers, who pull it if they lack it;
- ``know.have`` / ``know.want`` / ``know.query`` from peers allowed to query
  are answered from the store.

Each connected peer has a :class:`_Link`: a bounded queue of packets to
push, a bounded set of sequence numbers to announce, one sender task and a
lock that serialises pulls. What does not fit is dropped and counted: the
next have-exchange brings it.
"""
from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from core import events as ev
from core.errors import (BadRequest, CoveyError, InvalidSignature, MalformedMessage,
                         MessageTooLarge, PeerUnreachable, RateLimited, RefusedByPolicy,
                         StaleMessage, TimedOut)
from core.net.limits import LogLimiter
from core.peers import Tier

from . import gossip
from . import protocol as proto
from .db import MIGRATIONS, KnowledgeDB
from .engine import KnowledgeEngine, Verdict
from .protocol import Equivocation, StoreFull

log = logging.getLogger("covey.knowledge")

HAVE_TIMEOUT = 15.0        # seconds for a know.have answer
PULL_TIMEOUT = 60.0        # seconds for a know.want answer (up to 20 MiB)
PUSH_TIMEOUT = 60.0        # seconds for a know.push answer (up to 16 MiB)
ANNOUNCE_TIMEOUT = 15.0
SYNC_INTERVAL = 60.0       # re-run the have exchange with every peer we accept from
SAVE_INTERVAL = 30.0       # persist the counters
COALESCE = 0.02            # seconds a link waits to gather announcements into one message
PUSH_WINDOW = 8            # pushes in flight per peer
MAX_QUEUED_PUSHES = 4096   # packet ids waiting to be pushed to one peer
MAX_ANNOUNCE = 8192        # sequence numbers waiting to be announced to one peer
MAX_WAITING_PULLS = 32     # pulls queued behind the running one, per peer
MAX_PREVIEW = 64 << 10     # characters of text `show` returns
MAX_LIST = 1000
MAX_STANDINGS = 4096       # cached (tier, banned) of peers
STANDING_EVENTS = (ev.PEER_CONNECTED, ev.PEER_DISCONNECTED, ev.TIER_CHANGED, ev.PEER_BANNED,
                   ev.PEER_UNBANNED, ev.PEER_ADDED, ev.PEER_REMOVED)

# The error a rejected know.push is answered with, by the engine's reason.
_REFUSALS: dict[str, type[CoveyError]] = {
    "refused_by_policy": RefusedByPolicy, "invalid_signature": InvalidSignature,
    "too_large": MessageTooLarge, "from_future": StaleMessage, "equivocation": Equivocation,
    "store_full": StoreFull, "rate_limited": RateLimited, "peer_over_budget": RateLimited,
}


def refusal(verdict: Verdict) -> CoveyError:
    """The typed error that tells the sender why its packet was refused."""
    kind = _REFUSALS.get(verdict.reason or "", MalformedMessage)
    return kind(f"packet refused ({verdict.reason}): {verdict.message}", reason=verdict.reason)


class _Link:
    """Outbound work for one connected peer: pushes, announcements, pulls (all bounded)."""

    def __init__(self, peer: str):
        self.peer = peer
        self.pushes: deque[str] = deque()
        self.announce: dict[str, set[int]] = {}
        self.announced = 0
        self.dropped = 0
        self.wake = asyncio.Event()
        self.sender: asyncio.Task | None = None
        self.pull_lock = asyncio.Lock()
        self.waiting = 0
        self.sending = False
        self.tasks: set[asyncio.Task] = set()

    def queue_push(self, pid: str) -> bool:
        if len(self.pushes) >= MAX_QUEUED_PUSHES:
            self.dropped += 1
            return False
        self.pushes.append(pid)
        self.wake.set()
        return True

    def queue_announce(self, author: str, seq: int) -> bool:
        if self.announced >= MAX_ANNOUNCE:
            self.dropped += 1
            return False
        seqs = self.announce.setdefault(author, set())
        if seq not in seqs:
            seqs.add(seq)
            self.announced += 1
        self.wake.set()
        return True

    def take_announcements(self) -> list[proto.Ranges]:
        """The waiting announcements as know.ihave range maps within the message bounds."""
        bodies: list[proto.Ranges] = []
        current: proto.Ranges = {}
        for author, seqs in self.announce.items():
            ranges = proto.seqs_to_ranges(seqs)
            for start in range(0, len(ranges), proto.MAX_RANGES):
                if author in current or len(current) >= proto.MAX_RANGE_AUTHORS:
                    bodies.append(current)
                    current = {}
                current[author] = ranges[start:start + proto.MAX_RANGES]
        if current:
            bodies.append(current)
        self.announce.clear()
        self.announced = 0
        return bodies


class KnowledgeService:
    """Signed knowledge on a node: publish, gossip by tier, catch up, answer queries."""

    name = "knowledge"
    migrations = MIGRATIONS

    def __init__(self, node) -> None:
        self.node = node
        self.db: KnowledgeDB | None = None
        self.engine: KnowledgeEngine | None = None
        self.sync_interval = SYNC_INTERVAL
        self.save_interval = SAVE_INTERVAL
        self._links: dict[str, _Link] = {}
        self._timer: asyncio.Task | None = None
        self._unsubscribe: list = []
        self._rejections = LogLimiter(per_window=20, window=10.0)
        self._stopped = False
        self._standings: dict[str, tuple[Tier, bool]] = {}
        self._connected_view: list[tuple[str, Tier, bool]] | None = None
        node.on_message("know.push", self._on_push)
        node.on_message("know.ihave", self._on_ihave)
        node.on_message("know.have", self._on_have)
        node.on_message("know.want", self._on_want)
        node.on_message("know.query", self._on_query)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.db = KnowledgeDB(self.node.store)
        self.engine = KnowledgeEngine(self.db, self.node.identity.id)
        bus = self.node.events
        self._unsubscribe = [bus.on(name, self._forget_standings) for name in STANDING_EVENTS]
        self._unsubscribe += [bus.on(ev.PEER_CONNECTED, self._on_connected),
                             bus.on(ev.PEER_DISCONNECTED, self._on_disconnected),
                             bus.on(ev.TIER_CHANGED, self._on_tier_changed),
                             bus.on(ev.PEER_UNBANNED, self._on_tier_changed)]
        self._timer = asyncio.ensure_future(self._periodic())
        for peer in self.node.connected_peers():  # connected before the service started
            self._link(peer)
            self.schedule_sync(peer)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        tasks = [self._timer] if self._timer is not None else []
        for link in self._links.values():
            tasks += [t for t in (link.sender, *link.tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._links.clear()
        if self.engine is not None:
            self.engine.save()

    def _ready(self) -> KnowledgeEngine:
        if self.engine is None or self._stopped:
            raise PeerUnreachable("the knowledge service is not running on this node")
        return self.engine

    @property
    def _packets(self) -> KnowledgeDB:
        """The packet store (made by start())."""
        if self.db is None:
            raise PeerUnreachable("the knowledge service is not running on this node")
        return self.db

    async def _periodic(self) -> None:
        """Save the counters every ``save_interval`` s; re-run the have exchange every ``sync_interval`` s.

        The intervals are read on every turn (at least once a second), so changing them takes effect.
        """
        loop = asyncio.get_running_loop()
        last_sync = last_save = loop.time()
        while True:
            due = min(last_sync + self.sync_interval, last_save + self.save_interval)
            await asyncio.sleep(min(1.0, max(0.01, due - loop.time())))
            now = loop.time()
            if now >= last_save + self.save_interval:
                last_save = now
                try:
                    await asyncio.to_thread(self._save)
                except CoveyError as exc:
                    log.warning("knowledge counters not saved: %s", exc)
            if now >= last_sync + self.sync_interval:
                last_sync = now
                for peer in self.node.connected_peers():
                    self.schedule_sync(peer)

    def _save(self) -> None:
        if self.engine is not None:
            self.engine.save()

    # -- who is who --------------------------------------------------------------------
    # Every packet needs the sender's standing and the connected peers' (for its forward plan):
    # cached, and forgotten whenever an event says a tier, a ban or a connection changed.
    def _standing(self, peer: str) -> tuple[Tier, bool]:
        cached = self._standings.get(peer)
        if cached is None:
            rec = self.node.peers.get(peer)
            cached = (Tier.UNKNOWN, False) if rec is None else (self.node.peers.tier_of(peer), rec.banned)
            if len(self._standings) < MAX_STANDINGS:
                self._standings[peer] = cached
        return cached

    def _connected(self) -> list[tuple[str, Tier, bool]]:
        if self._connected_view is None:
            self._connected_view = [(peer, *self._standing(peer)) for peer in self.node.connected_peers()]
        return self._connected_view

    def _forget_standings(self, event=None) -> None:
        self._standings.clear()
        self._connected_view = None

    def _link(self, peer: str) -> _Link:
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = _Link(peer)
            link.sender = asyncio.ensure_future(self._send_loop(link))
        return link

    # -- events ------------------------------------------------------------------------
    def _on_connected(self, event) -> None:
        peer = event.data.get("peer")
        if peer and not self._stopped:
            self._link(peer)
            self.schedule_sync(peer)

    def _on_disconnected(self, event) -> None:
        peer = event.data.get("peer")
        link = self._links.pop(peer, None)
        if link is not None:
            for task in (link.sender, *link.tasks):
                if task is not None:
                    task.cancel()
        if self.engine is not None and peer:
            self.engine.peer_gone(peer)

    def _on_tier_changed(self, event) -> None:
        peer = event.data.get("peer")
        if peer and peer in self.node.connected_peers() and not self._stopped:
            self.schedule_sync(peer)

    # -- catch-up ----------------------------------------------------------------------
    def schedule_sync(self, peer: str) -> asyncio.Task | None:
        """Run the have exchange with ``peer`` soon (None if we take nothing from it or too much waits)."""
        tier, banned = self._standing(peer)
        if self.engine is None or not gossip.may_accept(tier, banned):
            return None
        return self._queue_pull(peer, self.sync(peer))

    def _queue_pull(self, peer: str, coro) -> asyncio.Task | None:
        link = self._links.get(peer)
        if link is None or link.waiting >= MAX_WAITING_PULLS:
            coro.close()
            if link is not None:
                link.dropped += 1
            return None
        link.waiting += 1

        async def serialised():
            acquired = False
            try:
                async with link.pull_lock:
                    acquired = True
                    link.waiting -= 1
                    return await coro
            finally:
                if not acquired:  # cancelled while queued: the pull never ran
                    link.waiting -= 1
                    coro.close()
        task = asyncio.ensure_future(serialised())
        link.tasks.add(task)
        task.add_done_callback(lambda t: self._pull_done(link, t))
        return task

    def _pull_done(self, link: _Link, task: asyncio.Task) -> None:
        link.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("knowledge pull from %s failed: %s", link.peer[:12], exc,
                        exc_info=None if isinstance(exc, CoveyError) else exc)

    async def sync(self, peer: str) -> int:
        """The have exchange with ``peer``, then the pull of what it has and we lack; returns packets accepted."""
        engine = self._ready()
        tier, banned = self._standing(peer)
        if not gossip.may_accept(tier, banned):
            return 0
        try:
            reply = await self.node.request(peer, "know.have", engine.have(), timeout=HAVE_TIMEOUT)
        except (PeerUnreachable, TimedOut) as exc:
            log.info("have exchange with %s: %s", peer[:12], exc)
            return 0
        except CoveyError as exc:  # the peer refused us (we may not query it): nothing to pull
            log.info("have exchange with %s refused: %s", peer[:12], exc)
            return 0
        try:
            pull = engine.start_pull(peer, tier, banned, reply)
        except CoveyError as exc:
            self._fault(peer, "malformed", f"its know.have reply: {exc}")
            return 0
        return await self._run_pull(peer, pull)

    async def _run_pull(self, peer: str, pull) -> int:
        """Ask ``peer`` for the pull's batches until it is done; returns packets accepted."""
        engine = self._ready()
        accepted = 0
        while True:
            batch = pull.next_batch()
            if not batch:
                return accepted
            try:
                reply = await self.node.request(peer, "know.want", proto.ranges_body(batch),
                                                timeout=PULL_TIMEOUT)
            except CoveyError as exc:
                pull.finish_batch(False)
                log.info("pull from %s stopped: %s", peer[:12], exc)
                return accepted
            tier, banned = self._standing(peer)  # it may have changed while we waited
            verdicts, _ = engine.admit_reply(peer, tier, banned, reply, pull, peers=self._connected())
            accepted += self._after(peer, verdicts)

    # -- handlers ----------------------------------------------------------------------
    def _on_push(self, peer: str, body: Any) -> dict:
        engine = self._ready()
        tier, banned = self._standing(peer)
        verdict = engine.admit(peer, tier, banned, body, peers=self._connected())
        self._after(peer, [verdict])
        if verdict.status == "rejected":
            raise refusal(verdict)
        return {"ok": True, "status": verdict.status, "message": verdict.message}

    def _on_ihave(self, peer: str, body: Any) -> dict:
        engine = self._ready()
        tier, banned = self._standing(peer)
        try:
            pull = engine.on_ihave(peer, tier, banned, body)
        except CoveyError as exc:
            self._fault(peer, "malformed", f"its know.ihave: {exc}")
            raise
        if pull is not None:
            self._queue_pull(peer, self._run_pull(peer, pull))
        return {"ok": True}

    def _on_have(self, peer: str, body: Any) -> dict:
        return self._ready().answer_have(peer, *self._standing(peer), body)

    def _on_want(self, peer: str, body: Any) -> dict:
        return self._ready().answer_want(peer, *self._standing(peer), body)

    def _on_query(self, peer: str, body: Any) -> dict:
        return self._ready().answer_query(peer, *self._standing(peer), body)

    def _after(self, peer: str, verdicts: list[Verdict]) -> int:
        """Act on intake verdicts: penalise peer faults, announce and report accepted packets."""
        accepted = 0
        tier = self._standing(peer)[0].value
        for verdict in verdicts:
            if verdict.status == "rejected":
                if verdict.peer_fault:
                    self._fault(peer, verdict.reason, verdict.message)
                self._report_rejection(peer, verdict)
            elif verdict.status == "accepted" and verdict.packet is not None:
                accepted += 1
                packet = verdict.packet
                for target in verdict.forward.lazy:
                    link = self._links.get(target)
                    if link is not None:
                        link.queue_announce(packet.author, packet.seq)
                self._emit_packet(packet, peer, tier)
        return accepted

    def _fault(self, peer: str, reason: str | None, message: str) -> None:
        """The peer sent something only a broken or hostile peer sends: its reputation drops."""
        if self.node.peers.get(peer) is None:
            return
        try:
            self.node.peers.record_outcome(peer, False, f"knowledge: {reason}: {message}"[:300])
        except CoveyError as exc:
            log.info("reputation of %s not changed: %s", peer[:12], exc)

    def _report_rejection(self, peer: str, verdict: Verdict) -> None:
        suppressed = self._rejections.allow(peer)
        if suppressed is not None:
            self.node.events.emit(ev.KNOWLEDGE_REJECTED, peer=peer, reason=verdict.reason,
                                  message=verdict.message[:300], suppressed=suppressed)

    def _emit_packet(self, packet: proto.Packet, source: str | None, tier: str) -> None:
        self.node.events.emit(ev.KNOWLEDGE_PACKET, id=packet.id, author=packet.author, seq=packet.seq,
                              title=packet.title, kind=packet.kind, tags=list(packet.tags),
                              tier=tier, source=source)

    # -- sending -----------------------------------------------------------------------
    async def _send_loop(self, link: _Link) -> None:
        """Drain one peer's pushes and announcements; a failed send is logged, the next one tried."""
        while True:
            await link.wake.wait()
            link.sending = True
            try:
                await asyncio.sleep(COALESCE)
                link.wake.clear()
                await self._drain(link)
            finally:
                link.sending = False

    async def _drain(self, link: _Link) -> None:
        peer = link.peer
        tier, banned = self._standing(peer)
        if not gossip.relayable(tier) or banned:  # no longer CORE: nothing goes to it
            link.pushes.clear()
            link.announce.clear()
            link.announced = 0
            return
        for ranges in link.take_announcements():
            try:
                await self.node.request(peer, "know.ihave", proto.ranges_body(ranges),
                                        timeout=ANNOUNCE_TIMEOUT)
            except CoveyError as exc:
                log.info("announcement to %s failed: %s", peer[:12], exc)
        while link.pushes:
            window = [link.pushes.popleft() for _ in range(min(PUSH_WINDOW, len(link.pushes)))]
            await asyncio.gather(*(self._push(peer, pid) for pid in window))

    async def _push(self, peer: str, pid: str) -> None:
        engine = self._ready()
        try:
            stored = self._packets.get(pid)
        except CoveyError as exc:
            log.info("packet %s not pushed: %s", pid[:16], exc)
            return
        try:
            await self.node.request(peer, "know.push", proto.item(pid, stored.raw, 1), timeout=PUSH_TIMEOUT)
        except CoveyError as exc:
            log.info("push of %s to %s failed: %s", pid[:16], peer[:12], exc)
            return
        engine.sent(peer)

    def pending(self) -> int:
        """Work queued or in flight on the links (pulls, pushes, announcements); 0 when idle."""
        return sum(len(link.tasks) + len(link.pushes) + link.announced + link.sending
                   for link in self._links.values())

    # -- what the commands and the GUI call -----------------------------------------------
    async def publish(self, *, text: str | None = None, data: bytes | None = None,
                      filename: str | None = None, media_type: str | None = None,
                      path: str | os.PathLike | None = None, title: str = "", kind: str = "note",
                      tags=()) -> dict:
        """Sign and keep a new packet (text, file bytes, or a local file ``path``) and push it to CORE peers."""
        engine = self._ready()
        if path is not None:
            if data is not None:
                raise BadRequest("give a file path or file bytes, not both")
            data, name = await asyncio.to_thread(read_file, Path(path))
            filename = filename or name
        if (text is None) == (data is None):
            raise BadRequest("publish either text or a file")
        fields: dict[str, Any] = {"kind": kind or "note", "title": title or "", "tags": list(tags)}
        if text is not None:
            fields["text"] = text
        elif data is not None:   # (exactly one of text and data is given, checked above)
            if len(data) > proto.MAX_FILE_BYTES:
                raise MessageTooLarge(f"the file has {len(data)} bytes; a packet holds at most "
                                      f"{proto.MAX_FILE_BYTES} (16 MiB)")
            name = filename or "file"
            fields["file"] = (name, media_type or guess_media_type(name), data)
        packet, forward = engine.publish(self.node.identity, peers=self._connected(), **fields)
        pushed = [peer for peer in forward.eager if peer in self._links and self._links[peer].queue_push(packet.id)]
        self._emit_packet(packet, None, "self")
        log.info("published knowledge %s #%d (%s), pushing to %d peer(s)", packet.id[:16], packet.seq,
                 packet.kind, len(pushed))
        return {**packet.summary(), "tier": "self", "verified": True, "pushed_to": pushed}

    def list(self, *, author: str | None = None, tag: str | None = None, kind: str | None = None,
             limit: int = 100, offset: int = 0) -> list[dict]:
        """Stored packets, newest first (every one was verified when it was stored)."""
        if author is not None:
            author = self._author(author)
        if tag is not None:
            tag = proto.check_tag(tag.strip().lower())
        if kind is not None:
            kind = proto.check_kind(kind)
        return self._packets.list(author=author, tag=tag, kind=kind, limit=max(1, min(limit, MAX_LIST)),
                            offset=offset)

    def _author(self, ref: str) -> str:
        """A packet author from an id, or a peer of the book (name or id prefix), or ourselves."""
        text = ref.strip().lower()
        if text in ("self", "me") or text == self.node.identity.id:
            return self.node.identity.id
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            return text
        return self.node.peers.resolve(ref).id

    def show(self, ref: str) -> dict:
        """One packet with its signature checked again from the stored bytes, and its text."""
        self._ready()
        stored = self._packets.get(ref)
        out = dict(stored.summary)
        try:
            packet = stored.open()
        except CoveyError as exc:  # a damaged row: shown as such, never as valid
            out.update(verified=False, problem=str(exc), text=None)
            return out
        out.update(verified=True, problem=None, signature=packet.envelope["sig"].hex(),
                   fingerprint=_fingerprint(packet.author))
        if packet.text is not None:
            out["text"] = packet.text[:MAX_PREVIEW]
            out["truncated"] = len(packet.text) > MAX_PREVIEW
        else:
            out["text"] = None
        return out

    async def export(self, ref: str, path: str | os.PathLike) -> dict:
        """Write a packet's content (re-verified first) to ``path`` (absolute); returns what was written."""
        self._ready()
        stored = self._packets.get(ref)
        target = Path(path)
        if not target.is_absolute():
            raise BadRequest(f"export needs an absolute path, got {str(path)!r:.200}")
        packet = stored.open()  # InvalidSignature / MalformedMessage: nothing is written
        await asyncio.to_thread(write_file, target, packet.content)
        return {"id": packet.id, "path": str(target), "size": packet.size, "verified": True,
                "filename": packet.filename, "media_type": packet.media_type or "text/plain"}

    def status(self) -> dict:
        """Counters per peer and in total, the store's size, and who the peers are."""
        out = self._ready().status()
        connected = set(self.node.connected_peers())
        peers = []
        for peer, counts in out["counters"]["peers"].items():
            rec = self.node.peers.get(peer) if peer != gossip.OTHER else None
            peers.append({"id": peer, "name": rec.name if rec else "", "tier": rec.tier if rec else None,
                          "connected": peer in connected, **counts})
        out["peers"] = peers
        out["queued"] = {p: len(link.pushes) + link.announced for p, link in self._links.items()}
        out["dropped"] = sum(link.dropped for link in self._links.values())
        return out

    async def query(self, ref: str, *, tag: str | None = None, author: str | None = None,
                    kind: str | None = None, limit: int = 20) -> dict:
        """Ask a peer for its packets (what EXTERNAL peers may do); each one is verified, none is stored."""
        self._ready()
        rec = self.node.resolve(ref)
        q = proto.Query(tag=proto.check_tag(tag.strip().lower()) if tag else None,
                        author=self._author(author) if author else None,
                        kind=proto.check_kind(kind) if kind else None,
                        limit=max(1, min(limit, proto.MAX_QUERY_LIMIT)))
        reply = await self.node.request(rec.id, "know.query", q.body(), timeout=PULL_TIMEOUT)
        items, more = proto.parse_reply(reply, "know.query reply")
        packets = []
        now = time.time()
        for pid, raw, _hops in items:
            try:
                packet = proto.open_packet(raw, claimed_id=pid, now=now)
            except CoveyError as exc:
                packets.append({"id": pid, "verified": False, "problem": str(exc)})
                continue
            view = {**packet.summary(), "verified": True, "problem": None, "stored": self._packets.has(pid)}
            if packet.text is not None:
                view["text"] = packet.text[:MAX_PREVIEW]
            packets.append(view)
        return {"peer": rec.id, "packets": packets, "more": more}


# -- files ------------------------------------------------------------------------------
def read_file(path: Path) -> tuple[bytes, str]:
    """A local file's bytes and name, refused before reading when it is over the packet limit."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BadRequest(f"{path} is not a file")
    size = path.stat().st_size
    if size > proto.MAX_FILE_BYTES:
        raise MessageTooLarge(f"{path.name} has {size} bytes; a packet holds at most "
                              f"{proto.MAX_FILE_BYTES} (16 MiB)")
    with path.open("rb") as f:
        data = f.read(proto.MAX_FILE_BYTES + 1)
    if len(data) > proto.MAX_FILE_BYTES:  # it grew while we looked
        raise MessageTooLarge(f"{path.name} is above {proto.MAX_FILE_BYTES} bytes")
    return data, path.name


def write_file(target: Path, content: bytes) -> None:
    """Write ``content`` to ``target`` atomically (a temporary file beside it, then a rename)."""
    if target.is_dir():
        raise BadRequest(f"{target} is a directory: give a file name")
    if not target.parent.is_dir():
        raise BadRequest(f"{target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".covey-export-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def guess_media_type(name: str) -> str:
    """The media type of a file name, ``application/octet-stream`` when unknown or not type/subtype."""
    guessed = (mimetypes.guess_type(name)[0] or "").lower()
    return guessed if proto.MEDIA_TYPE_RE.match(guessed) else "application/octet-stream"


def _fingerprint(peer_id: str) -> str:
    from core.identity import fingerprint_of
    return fingerprint_of(peer_id)
