"""Knowledge tables on the node's Store: packets, tags, per-author heads, counters.

The packet's canonical signed bytes (``raw``) are kept in the row: they are
what gets re-verified and relayed, and SQLite keeps row and bytes consistent
in one transaction (no side files to lose or orphan). Listing queries never
read ``raw``. The store is bounded (``max_packets``, ``max_bytes``): beyond
that new packets are refused with StoreFull.

``relay`` marks packets we may forward and serve: ours, or received at least
once from a peer that was CORE at the time (DESIGN section 2: SANDBOX
packets are accepted but not propagated). Two contiguous heads are kept per
author: over every packet (what we ask peers for) and over relayable ones
(what we advertise in know.have, so every advertised packet can be served).
"""
from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

from core.errors import CoveyError
from core.store import Store

from . import protocol as proto
from .protocol import (
    AmbiguousPacket,
    Equivocation,
    Packet,
    Query,
    Ranges,
    StoreFull,
    UnknownPacket,
)

COMPONENT = "knowledge"
SELF_TIER = "self"
MIN_PREFIX = 4
DEFAULT_MAX_PACKETS = 200_000
DEFAULT_MAX_BYTES = 4 << 30
MAX_LIST = 1000
_SCAN = 512  # rows per step when advancing a head past out-of-order packets

MIGRATIONS = [
    (
        """CREATE TABLE know_packets (
               id TEXT PRIMARY KEY,
               author TEXT NOT NULL,
               seq INTEGER NOT NULL,
               created REAL NOT NULL,
               kind TEXT NOT NULL,
               title TEXT NOT NULL,
               tags TEXT NOT NULL,
               size INTEGER NOT NULL,
               filename TEXT,
               media_type TEXT,
               raw BLOB NOT NULL,
               hops INTEGER NOT NULL,
               received_from TEXT,
               tier TEXT NOT NULL,
               relay INTEGER NOT NULL,
               received REAL NOT NULL,
               UNIQUE (author, seq)
           )""",
        "CREATE INDEX know_packets_received ON know_packets(received)",
        "CREATE INDEX know_packets_kind ON know_packets(kind)",
        """CREATE TABLE know_tags (
               tag TEXT NOT NULL,
               id TEXT NOT NULL REFERENCES know_packets(id) ON DELETE CASCADE,
               PRIMARY KEY (tag, id)
           ) WITHOUT ROWID""",
        """CREATE TABLE know_heads (
               author TEXT PRIMARY KEY,
               contiguous INTEGER NOT NULL DEFAULT 0,
               relay_contiguous INTEGER NOT NULL DEFAULT 0,
               updated REAL NOT NULL
           )""",
        """CREATE TABLE know_counters (
               peer TEXT NOT NULL,
               name TEXT NOT NULL,
               value INTEGER NOT NULL,
               PRIMARY KEY (peer, name)
           ) WITHOUT ROWID""",
    ),
]

_SUMMARY_COLUMNS = ("id, author, seq, created, kind, title, tags, size, filename, media_type, "
                    "hops, received_from, tier, relay, received")


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored packet: its summary columns, the signed bytes and how it arrived."""
    summary: dict
    raw: bytes

    @property
    def id(self) -> str:
        return self.summary["id"]

    def open(self) -> Packet:
        """Re-check the stored bytes: id and signature (MalformedMessage / InvalidSignature)."""
        return proto.verify(proto.decode(self.raw, claimed_id=self.id))

    def view(self) -> dict:
        """The summary plus ``verified`` and, when it fails, ``problem`` (for show / the GUI)."""
        out = dict(self.summary)
        try:
            self.open()
        except CoveyError as exc:  # MalformedMessage, InvalidSignature: reported, not raised
            out.update(verified=False, problem=str(exc))
        else:
            out.update(verified=True, problem=None)
        return out


@dataclass(frozen=True, slots=True)
class Missing:
    """Result of comparing have-vectors: what to pull from the peer, and what it lacks from us."""
    want: Ranges
    offer: Ranges


def _summary(row) -> dict:
    out = dict(zip(row.keys(), row, strict=True))
    out["tags"] = json.loads(out["tags"])
    out["relay"] = bool(out["relay"])
    out["media_type"] = out["media_type"] or "text/plain"
    return out


class KnowledgeDB:
    """Packets in SQLite, bounded in count and bytes. (Its ``list`` method shadows the
    builtin in the class body: annotations after it spell ``builtins.list``.)"""

    def __init__(self, store: Store, *, max_packets: int = DEFAULT_MAX_PACKETS,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        if max_packets < 1 or max_bytes < proto.MAX_PACKET_BYTES:
            raise ValueError("max_packets must be >= 1 and max_bytes >= one maximal packet")
        self.store = store
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        store.ensure_schema(COMPONENT, MIGRATIONS)
        row = store.query_row("SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(raw)), 0) AS b FROM know_packets")
        self.count, self.bytes = int(row["n"]), int(row["b"])

    # -- writing -------------------------------------------------------------
    def insert(self, packet: Packet, *, hops: int, received_from: str | None, tier: str,
               relay: bool, now: float | None = None) -> str:
        """Keep a verified packet. Returns "inserted", "duplicate" or "upgraded".

        "upgraded": we held it as not relayable and it now came from a CORE peer
        (or from us). Equivocation if the author already has another packet at
        this seq; StoreFull beyond the bounds.
        """
        if not packet.verified:
            raise ValueError("only verified packets are stored")
        now = time.time() if now is None else now
        with self.store.transaction():
            row = self.store.query_one("SELECT id, relay FROM know_packets WHERE author = ? AND seq = ?",
                                       (packet.author, packet.seq))
            if row is not None:
                if row["id"] != packet.id:
                    raise Equivocation(
                        f"author {packet.author[:16]} signed two packets with seq {packet.seq}: kept "
                        f"{row['id'][:16]}, refused {packet.id[:16]}", author=packet.author,
                        seq=packet.seq, kept=row["id"], refused=packet.id)
                if relay and self.upgrade(packet.id, hops=hops, received_from=received_from, tier=tier,
                                          now=now):
                    return "upgraded"
                return "duplicate"
            if self.count + 1 > self.max_packets or self.bytes + len(packet.raw) > self.max_bytes:
                raise StoreFull(f"the knowledge store is full ({self.count} packets, {self.bytes} bytes; "
                                f"limits {self.max_packets}, {self.max_bytes})")
            self.store.execute(
                f"INSERT INTO know_packets ({_SUMMARY_COLUMNS}, raw) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (packet.id, packet.author, packet.seq, packet.created, packet.kind, packet.title,
                 json.dumps(list(packet.tags)), packet.size, packet.filename, packet.media_type,
                 hops, received_from, tier, int(relay), now, packet.raw))
            for tag in packet.tags:
                self.store.execute("INSERT INTO know_tags(tag, id) VALUES (?, ?)", (tag, packet.id))
            self._advance(packet.author, now)
        self.count += 1
        self.bytes += len(packet.raw)
        return "inserted"

    def upgrade(self, pid: str, *, hops: int, received_from: str | None, tier: str,
                now: float | None = None) -> bool:
        """Mark a stored, not yet relayable packet as relayable (it came again from CORE); True if changed."""
        now = time.time() if now is None else now
        with self.store.transaction():
            row = self.store.query_one("SELECT author, relay FROM know_packets WHERE id = ?", (pid,))
            if row is None or row["relay"]:
                return False
            self.store.execute("UPDATE know_packets SET relay = 1, hops = ?, received_from = ?, tier = ? "
                               "WHERE id = ?", (hops, received_from, tier, pid))
            self._advance(row["author"], now)
        return True

    def _advance(self, author: str, now: float) -> None:
        """Move both contiguous heads of ``author`` past every packet now held in order."""
        head = self.store.query_one("SELECT contiguous, relay_contiguous FROM know_heads WHERE author = ?",
                                    (author,))
        contiguous, relay_contiguous = (head["contiguous"], head["relay_contiguous"]) if head else (0, 0)
        contiguous = self._scan(author, contiguous, relay_only=False)
        relay_contiguous = self._scan(author, relay_contiguous, relay_only=True)
        self.store.execute(
            "INSERT INTO know_heads(author, contiguous, relay_contiguous, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(author) DO UPDATE SET contiguous = excluded.contiguous, "
            "relay_contiguous = excluded.relay_contiguous, updated = excluded.updated",
            (author, contiguous, relay_contiguous, now))

    def _scan(self, author: str, head: int, *, relay_only: bool) -> int:
        relay = " AND relay = 1" if relay_only else ""
        while True:
            rows = self.store.query(f"SELECT seq FROM know_packets WHERE author = ? AND seq > ?{relay} "
                                    f"ORDER BY seq LIMIT {_SCAN}", (author, head))
            for row in rows:
                if row["seq"] != head + 1:
                    return head
                head += 1
            if len(rows) < _SCAN:
                return head

    # -- reading -------------------------------------------------------------
    def has(self, pid: str) -> bool:
        return self.store.query_one("SELECT 1 FROM know_packets WHERE id = ?", (pid,)) is not None

    def resolve(self, ref: str) -> str:
        """The full id for a full id or a unique prefix of at least 4 hex digits."""
        text = (ref or "").strip().lower()
        if len(text) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in text) or len(text) > 64:
            raise UnknownPacket(f"{ref!r:.70} is not a packet id or a prefix of at least {MIN_PREFIX} hex digits")
        rows = self.store.query("SELECT id FROM know_packets WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                (text, text + "g"))
        if not rows:
            raise UnknownPacket(f"no knowledge packet {text[:16]!r}; see `covey knowledge list`")
        if len(rows) > 1:
            raise AmbiguousPacket(f"{text!r} matches more than one packet; give more of the id")
        return rows[0]["id"]

    def get(self, ref: str) -> Stored:
        """The stored packet named by an id or a unique prefix (UnknownPacket, AmbiguousPacket)."""
        pid = self.resolve(ref)
        row = self.store.query_row(f"SELECT {_SUMMARY_COLUMNS}, raw FROM know_packets WHERE id = ?", (pid,))
        summary = _summary(row)
        raw = bytes(summary.pop("raw"))
        return Stored(summary=summary, raw=raw)

    def list(self, *, author: str | None = None, tag: str | None = None, kind: str | None = None,
             limit: int = 100, offset: int = 0, relay_only: bool = False) -> list[dict]:
        """Summaries, newest first, filtered by author / tag / kind."""
        where, params = self._filters(author, tag, kind, relay_only)
        limit = max(1, min(int(limit), MAX_LIST))
        rows = self.store.query(f"SELECT {_SUMMARY_COLUMNS} FROM know_packets {where} "
                                f"ORDER BY created DESC, id LIMIT ? OFFSET ?",
                                (*params, limit, max(0, int(offset))))
        return [_summary(r) for r in rows]

    @staticmethod
    def _filters(author, tag, kind, relay_only) -> tuple[str, builtins.list[Any]]:
        clauses, params = [], []
        if author is not None:
            clauses.append("author = ?")
            params.append(author)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if tag is not None:
            clauses.append("id IN (SELECT id FROM know_tags WHERE tag = ?)")
            params.append(tag)
        if relay_only:
            clauses.append("relay = 1")
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def next_seq(self, author: str) -> int:
        """The sequence number for the author's next packet."""
        row = self.store.query_row("SELECT MAX(seq) AS s FROM know_packets WHERE author = ?", (author,))
        return int(row["s"] or 0) + 1

    # -- catch-up ------------------------------------------------------------
    def have_vector(self, *, relay_only: bool = True, limit: int = proto.MAX_HAVE_AUTHORS) -> dict[str, int]:
        """{author: highest contiguous seq}, most recently updated authors first.

        ``relay_only`` (what we advertise) counts only packets we may serve.
        """
        column = "relay_contiguous" if relay_only else "contiguous"
        rows = self.store.query(f"SELECT author, {column} AS seq FROM know_heads WHERE {column} > 0 "
                                f"ORDER BY updated DESC, author LIMIT ?", (limit,))
        return {r["author"]: int(r["seq"]) for r in rows}

    def holds(self, author: str, seq: int) -> bool:
        """Whether a packet of ``author`` with ``seq`` is stored."""
        return self.store.query_one("SELECT 1 FROM know_packets WHERE author = ? AND seq = ?",
                                    (author, seq)) is not None

    def held(self, author: str, lo: int, hi: int) -> builtins.list[int]:
        """The seqs of ``author`` held in [lo, hi] (bounded by what is stored)."""
        rows = self.store.query("SELECT seq FROM know_packets WHERE author = ? AND seq BETWEEN ? AND ? "
                                "ORDER BY seq", (author, lo, hi))
        return [r["seq"] for r in rows]

    def lacking(self, author: str, lo: int, hi: int) -> builtins.list[tuple[int, int]]:
        """The ranges inside [lo, hi] of ``author`` we do not hold."""
        out, nxt = [], lo
        for seq in self.held(author, lo, hi):
            if seq > nxt:
                out.append((nxt, seq - 1))
            nxt = seq + 1
        if nxt <= hi:
            out.append((nxt, hi))
        return out

    def missing(self, remote_have: dict[str, int]) -> Missing:
        """Compare a peer's have-vector with ours.

        ``want``: what the peer advertises that we do not hold (packets we hold
        beyond a gap are not asked for again). ``offer``: what we may serve
        that the peer's vector says it lacks (it will ask; for status only).
        """
        ours = self.have_vector(relay_only=False, limit=1 << 30)
        want: Ranges = {}
        for author, theirs in remote_have.items():
            mine = ours.get(author, 0)
            if theirs > mine:
                gaps = self.lacking(author, mine + 1, theirs)
                if gaps:
                    want[author] = gaps
        offer: Ranges = {}
        for author, mine in self.have_vector(relay_only=True, limit=1 << 30).items():
            theirs = remote_have.get(author, 0)
            if mine > theirs:
                offer[author] = [(theirs + 1, mine)]
        return Missing(want=want, offer=offer)

    def serve(self, ranges: Ranges, *, max_count: int = proto.MAX_REPLY_PACKETS,
              max_bytes: int = proto.MAX_REPLY_BYTES) -> tuple[builtins.list[dict], bool]:
        """Reply items for a know.want: relayable packets in ``ranges``, bounded; ``more`` if cut short.

        Each item carries the stored hop count + 1; packets already at the hop
        limit are not served.
        """
        rows: list = []
        for author, pairs in ranges.items():
            for lo, hi in pairs:
                if len(rows) > max_count:
                    break
                rows += self.store.query(
                    "SELECT id, LENGTH(raw) AS n FROM know_packets WHERE author = ? AND seq BETWEEN ? AND ? "
                    "AND relay = 1 AND hops < ? ORDER BY seq LIMIT ?",
                    (author, lo, hi, proto.MAX_HOPS, max_count + 1 - len(rows)))
        return self._pick(rows, max_count, max_bytes)

    def query(self, q: Query) -> tuple[builtins.list[dict], bool]:
        """Reply items for a know.query (relayable packets only, newest first), bounded."""
        where, params = self._filters(q.author, q.tag, q.kind, True)
        rows = self.store.query(f"SELECT id, LENGTH(raw) AS n FROM know_packets {where} "
                                f"ORDER BY created DESC, id LIMIT ? OFFSET ?", (*params, q.limit + 1, q.offset))
        return self._pick(rows, q.limit, proto.MAX_REPLY_BYTES)

    def _pick(self, rows, max_count: int, max_bytes: int) -> tuple[builtins.list[dict], bool]:
        """Items for the first rows within the bounds (one packet always fits); True if some were left."""
        ids: builtins.list[str] = []
        total = 0
        for row in rows:
            if len(ids) >= max_count or (ids and total + row["n"] > max_bytes):
                break
            ids.append(row["id"])
            total += row["n"]
        return self._items(ids), len(ids) < len(rows)

    def _items(self, ids: builtins.list[str]) -> builtins.list[dict]:
        items = []
        for pid in ids:
            row = self.store.query_row("SELECT raw, hops FROM know_packets WHERE id = ?", (pid,))
            items.append(proto.item(pid, bytes(row["raw"]), row["hops"] + 1))
        return items

    # -- counters ------------------------------------------------------------
    def save_counters(self, rows: dict[str, dict[str, int]]) -> None:
        """Replace the persisted counters with ``{peer: {name: value}}``."""
        with self.store.transaction():
            self.store.execute("DELETE FROM know_counters")
            for peer, values in rows.items():
                for name, value in values.items():
                    self.store.execute("INSERT INTO know_counters(peer, name, value) VALUES (?, ?, ?)",
                                       (peer, name, int(value)))

    def load_counters(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self.store.query("SELECT peer, name, value FROM know_counters"):
            out.setdefault(row["peer"], {})[row["name"]] = int(row["value"])
        return out
