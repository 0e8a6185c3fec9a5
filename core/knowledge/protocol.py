"""The knowledge packet and the know.* message bodies.

A packet is a signed envelope (core.signed) of kind ``knowledge.packet``::

    envelope = seal(author, "knowledge.packet", {
        "v": 1, "seq": 1.., "kind": "note", "title": "...", "tags": ["..."],
        "text": "..."                                   # either text
        "file": {"name": "a.pdf", "type": "application/pdf", "data": b"..."},  # or a file
    })

- author = the envelope's signer, created time = its ``ts`` (no second copy
  of either inside the body, so they cannot disagree).
- The packet travels and is stored as ``raw = canonical(envelope)``; its id is
  ``sha256(raw)``. A receiver requires ``raw`` to be the canonical encoding of
  what it decodes to, so one packet has exactly one id.
- The hop count is NOT signed (relays increment it): it travels beside the
  packet in ``know.push`` and in replies.

Freshness: packets are relayed and re-verified long after they were made, so
the clock-skew window and the nonce replay cache of core.signed do not apply.
Instead: at admission ``created`` may not lie more than ``FUTURE_SKEW`` seconds
in the future (StaleMessage) and must not be negative; replays are caught by
id (seen-set + store) and a second packet for the same (author, seq) is
equivocation. Re-reading from storage checks id and signature only.

Messages (bodies are msgpack maps; ``item`` = ``{"id", "packet": raw, "hops"}``)::

    know.push   {"id", "packet", "hops"}        a new packet (eager, from its author)  reply {"ok"}
    know.ihave  {"ranges": {author: [[lo, hi]]}}  lazy relay announcement            reply {"ok"}
    know.have   {"have": {author: seq}}         highest contiguous seq per author;  reply: our know.have
    know.want   {"ranges": {author: [[lo, hi]]}}  pull these (inclusive ranges)    reply {"packets": [item], "more"}
    know.query  {"tag"?, "author"?, "kind"?, "limit"?, "offset"?}                  reply {"packets": [item], "more"}
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import msgpack

from core import signed
from core.errors import (AmbiguousPacket, Equivocation, MalformedMessage, MessageTooLarge,  # noqa: F401
                         StaleMessage, StoreFull, UnknownPacket)  # the knowledge errors, named here too
from core.identity import is_peer_id

KIND = "knowledge.packet"
VERSION = 1

MAX_FILE_BYTES = 16 << 20
MAX_TEXT_BYTES = 1 << 20          # longer text should be published as a file
MAX_TITLE = 200                   # characters
MAX_KINDNAME = 32
MAX_TAGS = 16
MAX_TAG = 32
MAX_FILENAME = 255
MAX_MEDIA_TYPE = 127
MAX_SEQ = (1 << 53) - 1           # exact in every JSON reader too
MAX_HOPS = 8
ENVELOPE_OVERHEAD = 64 << 10      # generous: the fields around the content are a few KiB at most
MAX_PACKET_BYTES = MAX_FILE_BYTES + ENVELOPE_OVERHEAD
FUTURE_SKEW = signed.DEFAULT_SKEW

MAX_HAVE_AUTHORS = 4096           # authors in one know.have
MAX_RANGE_AUTHORS = 256           # authors in one know.want / know.ihave
MAX_RANGES = 64                   # ranges per author in one know.want / know.ihave
MAX_REPLY_PACKETS = 256           # packets in one reply
MAX_REPLY_BYTES = 20 << 20        # packet bytes in one reply (one max-size packet always fits)
MAX_QUERY_LIMIT = 50
MAX_QUERY_OFFSET = 100_000

ID_RE = re.compile(r"^[0-9a-f]{64}$")
KIND_RE = re.compile(rf"^[a-z0-9][a-z0-9._-]{{0,{MAX_KINDNAME - 1}}}$")
MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_BODY_KEYS = {"v", "seq", "kind", "title", "tags"}


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded packet. ``verified`` says whether the signature was checked."""
    id: str
    raw: bytes
    author: str
    seq: int
    created: float
    kind: str
    title: str
    tags: tuple[str, ...]
    text: str | None
    filename: str | None
    media_type: str | None
    data: bytes | None
    envelope: dict
    verified: bool = False

    @property
    def content(self) -> bytes:
        """The body as bytes (UTF-8 text or the file)."""
        return self.data if self.data is not None else (self.text or "").encode("utf-8")

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else len((self.text or "").encode("utf-8"))

    def summary(self) -> dict:
        """Plain-type description for lists, the CLI and the GUI (no content)."""
        return {"id": self.id, "author": self.author, "seq": self.seq, "created": self.created,
                "kind": self.kind, "title": self.title, "tags": list(self.tags), "size": self.size,
                "filename": self.filename, "media_type": self.media_type or "text/plain"}


# -- field checks ---------------------------------------------------------------------
def _printable_line(value: Any, what: str, limit: int, *, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise MalformedMessage(f"packet {what} must be text")
    if len(value) > limit:
        raise MessageTooLarge(f"packet {what} is longer than {limit} characters")
    if not value and not empty_ok:
        raise MalformedMessage(f"packet {what} is empty")
    if not value.isprintable():
        raise MalformedMessage(f"packet {what} contains control characters")
    return value


def check_kind(value: Any) -> str:
    """A packet kind: 1-32 of lowercase letters, digits, '.', '_', '-'."""
    if not isinstance(value, str) or not KIND_RE.match(value):
        raise MalformedMessage(f"packet kind must be 1-{MAX_KINDNAME} lowercase letters, digits, "
                               f"'.', '_' or '-', got {value!r:.60}")
    return value


def check_tag(value: Any) -> str:
    """A tag: 1-32 printable characters without spaces."""
    tag = _printable_line(value, "tag", MAX_TAG, empty_ok=False)
    if any(ch.isspace() for ch in tag):
        raise MalformedMessage(f"packet tag {tag!r} contains a space")
    return tag


def check_tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise MalformedMessage("packet tags must be a list")
    if len(value) > MAX_TAGS:
        raise MessageTooLarge(f"a packet has at most {MAX_TAGS} tags, got {len(value)}")
    tags = tuple(check_tag(t) for t in value)
    if len(set(tags)) != len(tags):
        raise MalformedMessage("packet tags repeat")
    return tags


def check_seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEQ:
        raise MalformedMessage(f"a sequence number is an integer from 1 to {MAX_SEQ}, got {value!r:.40}")
    return value


def check_hops(value: Any) -> int:
    """A hop count: 0..MAX_HOPS (above that is refused: the packet went too far)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedMessage(f"a hop count is a non-negative integer, got {value!r:.40}")
    if value > MAX_HOPS:
        raise MalformedMessage(f"hop count {value} is above the limit of {MAX_HOPS}", reason="hop_limit")
    return value


def check_id(value: Any) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise MalformedMessage("a packet id is 64 lowercase hex digits")
    return value


def check_author(value: Any) -> str:
    if not is_peer_id(value):
        raise MalformedMessage("an author is a peer id (64 lowercase hex digits)")
    return value


def _check_file(value: Any) -> tuple[str, str, bytes]:
    if not isinstance(value, dict) or set(value) != {"name", "type", "data"}:
        raise MalformedMessage("packet file must be a map of name, type and data")
    name = _printable_line(value["name"], "file name", MAX_FILENAME, empty_ok=False)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise MalformedMessage(f"packet file name {name!r:.60} is a path, not a name")
    media = value["type"]
    if not isinstance(media, str) or len(media) > MAX_MEDIA_TYPE or not MEDIA_TYPE_RE.match(media):
        raise MalformedMessage(f"packet media type {media!r:.60} is not of the form type/subtype")
    data = value["data"]
    if not isinstance(data, bytes):
        raise MalformedMessage("packet file data must be bytes")
    if len(data) > MAX_FILE_BYTES:
        raise MessageTooLarge(f"packet file of {len(data)} bytes is above {MAX_FILE_BYTES}")
    return name, media, data


def _check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedMessage("packet text must be text")
    if len(value) > MAX_TEXT_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise MessageTooLarge(f"packet text is above {MAX_TEXT_BYTES} bytes: publish it as a file")
    return value


def _fields(body: Any) -> dict:
    """Validate a packet body; returns the typed fields. Cheap: no hashing, no signature."""
    if not isinstance(body, dict):
        raise MalformedMessage("packet body must be a map")
    keys = set(body)
    content = keys - _BODY_KEYS
    if not _BODY_KEYS <= keys or content not in ({"text"}, {"file"}):
        raise MalformedMessage(f"packet body must hold {sorted(_BODY_KEYS)} and exactly one of "
                               f"text / file, got {sorted(str(k) for k in keys)[:12]}")
    if body["v"] != VERSION or isinstance(body["v"], bool):
        raise MalformedMessage(f"packet version {body['v']!r:.20} is not supported (this node reads {VERSION})")
    out = {"seq": check_seq(body["seq"]), "kind": check_kind(body["kind"]),
           "title": _printable_line(body["title"], "title", MAX_TITLE, empty_ok=True),
           "tags": check_tags(body["tags"]), "text": None, "filename": None, "media_type": None,
           "data": None}
    if "text" in body:
        out["text"] = _check_text(body["text"])
    else:
        out["filename"], out["media_type"], out["data"] = _check_file(body["file"])
    return out


# -- building -------------------------------------------------------------------------
def clean_tags(tags: Iterable[str]) -> list[str]:
    """User-given tags: stripped, lowercased, without repeats (order kept); each still checked."""
    out: list[str] = []
    for tag in tags:
        tag = check_tag(str(tag).strip().lower())
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise MessageTooLarge(f"a packet has at most {MAX_TAGS} tags, got {len(out)}")
    return out


def make_body(seq: int, *, kind: str = "note", title: str = "", tags: Iterable[str] = (),
              text: str | None = None, file: tuple[str, str, bytes] | None = None) -> dict:
    """The body of a new packet: exactly one of ``text`` or ``file=(name, media_type, data)``."""
    if (text is None) == (file is None):
        raise MalformedMessage("a packet holds either text or a file")
    body: dict = {"v": VERSION, "seq": seq, "kind": kind, "title": title, "tags": clean_tags(tags)}
    if text is not None:
        body["text"] = text
    elif file is not None:   # (exactly one of the two, checked above)
        name, media, data = file
        body["file"] = {"name": name, "type": media, "data": bytes(data)}
    _fields(body)
    return body


def create(identity, seq: int, *, now: float | None = None, **fields) -> Packet:
    """Sign a new packet as ``identity`` (fields as in :func:`make_body`)."""
    envelope = signed.seal(identity, KIND, make_body(seq, **fields), now=now)
    return decode(signed.canonical(envelope), verified=True)


# -- reading --------------------------------------------------------------------------
def packet_id(raw: bytes) -> str:
    """The content address of a packet: sha256 hex of its canonical bytes."""
    return hashlib.sha256(raw).hexdigest()


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage("msgpack extension types are not allowed in a packet")


def decode(raw: Any, *, claimed_id: str | None = None, verified: bool = False) -> Packet:
    """Decode and bound-check packet bytes and compute the id; the signature is NOT checked.

    Raises MessageTooLarge, MalformedMessage (also when ``claimed_id`` is not the
    hash of ``raw``: code ``id_mismatch`` in the details).
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise MalformedMessage("a packet travels as bytes")
    raw = bytes(raw)
    if len(raw) > MAX_PACKET_BYTES:
        raise MessageTooLarge(f"packet of {len(raw)} bytes is above {MAX_PACKET_BYTES}")
    pid = packet_id(raw)
    if claimed_id is not None and claimed_id != pid:
        raise MalformedMessage(f"packet id {str(claimed_id)[:16]} does not match its bytes "
                               f"(they hash to {pid[:16]})", reason="id_mismatch")
    try:
        envelope = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_refuse_ext,
                                   max_bin_len=MAX_PACKET_BYTES, max_str_len=MAX_PACKET_BYTES,
                                   max_array_len=4 * MAX_TAGS, max_map_len=16)
    except MalformedMessage:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"packet bytes are not a msgpack map: {exc}") from None
    signed._check_shape(envelope, KIND)
    fields = _fields(envelope["body"])
    if signed.canonical(envelope) != raw:
        raise MalformedMessage("packet bytes are not in canonical form (one packet, one id)")
    created = float(envelope["ts"])
    if created < 0:
        raise MalformedMessage("packet created time is negative")
    return Packet(id=pid, raw=raw, author=envelope["signer"], created=created,
                  envelope=envelope, verified=verified, **fields)


def verify(packet: Packet) -> Packet:
    """Check the author's signature; returns the packet marked verified (InvalidSignature)."""
    if packet.verified:
        return packet
    signed.verify_only(packet.envelope, KIND)
    return dataclasses.replace(packet, verified=True)


def check_fresh(packet: Packet, now: float, skew: float = FUTURE_SKEW) -> None:
    """Admission rule: a packet may not come from further than ``skew`` in the future."""
    if packet.created > now + skew:
        raise StaleMessage(f"packet {packet.id[:16]} was created {packet.created - now:.0f} s in the "
                           f"future (allowed skew {skew:.0f} s); check the author's clock")


def open_packet(raw: Any, *, claimed_id: str | None = None, now: float | None = None) -> Packet:
    """decode + verify (+ check_fresh when ``now`` is given): the whole check in one call."""
    packet = verify(decode(raw, claimed_id=claimed_id))
    if now is not None:
        check_fresh(packet, now)
    return packet


# -- message bodies -------------------------------------------------------------------
def _map(body: Any, what: str, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()) -> dict:
    if not isinstance(body, dict):
        raise MalformedMessage(f"{what} body must be a map")
    keys = set(body)
    if not required <= keys or not keys <= required | optional:
        raise MalformedMessage(f"{what} body must hold {sorted(required)}"
                               + (f" (and optionally {sorted(optional)})" if optional else ""))
    return body


def push_body(packet: Packet, hops: int) -> dict:
    """The know.push body (also one item of a reply)."""
    return {"id": packet.id, "packet": packet.raw, "hops": check_hops(hops)}


def item(pid: str, raw: bytes, hops: int) -> dict:
    """One reply item from stored parts."""
    return {"id": pid, "packet": raw, "hops": hops}


def parse_item(body: Any, what: str = "know.push") -> tuple[str, bytes, int]:
    """(claimed id, raw packet, hops) with cheap checks only (decode() does the rest)."""
    body = _map(body, what, {"id", "packet", "hops"})
    raw = body["packet"]
    if not isinstance(raw, bytes):
        raise MalformedMessage(f"{what} packet must be bytes")
    if len(raw) > MAX_PACKET_BYTES:
        raise MessageTooLarge(f"packet of {len(raw)} bytes is above {MAX_PACKET_BYTES}")
    return check_id(body["id"]), raw, check_hops(body["hops"])


def have_body(have: dict[str, int]) -> dict:
    return {"have": dict(have)}


def parse_have(body: Any) -> dict[str, int]:
    """{author: highest contiguous seq} from a know.have body (or its reply)."""
    have = _map(body, "know.have", {"have"})["have"]
    if not isinstance(have, dict):
        raise MalformedMessage("know.have must map authors to sequence numbers")
    if len(have) > MAX_HAVE_AUTHORS:
        raise MessageTooLarge(f"know.have lists {len(have)} authors, above {MAX_HAVE_AUTHORS}")
    out = {}
    for author, seq in have.items():
        check_author(author)
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise MalformedMessage(f"know.have seq for {author[:16]} must be 0..{MAX_SEQ}")
        if seq:
            out[author] = seq
    return out


Ranges = dict[str, list[tuple[int, int]]]


def ranges_body(ranges: Ranges) -> dict:
    """The know.want / know.ihave body."""
    return {"ranges": {a: [[lo, hi] for lo, hi in rs] for a, rs in ranges.items()}}


def parse_ranges(body: Any, what: str = "know.want") -> Ranges:
    """{author: sorted disjoint inclusive (lo, hi) ranges} from a know.want / know.ihave body."""
    ranges = _map(body, what, {"ranges"})["ranges"]
    if not isinstance(ranges, dict):
        raise MalformedMessage(f"{what} must map authors to lists of [lo, hi] ranges")
    if len(ranges) > MAX_RANGE_AUTHORS:
        raise MessageTooLarge(f"{what} names {len(ranges)} authors, above {MAX_RANGE_AUTHORS}")
    out: Ranges = {}
    for author, rs in ranges.items():
        check_author(author)
        if not isinstance(rs, list) or not rs:
            raise MalformedMessage(f"{what} ranges for {author[:16]} must be a non-empty list")
        if len(rs) > MAX_RANGES:
            raise MessageTooLarge(f"{what} has {len(rs)} ranges for one author, above {MAX_RANGES}")
        prev = 0
        pairs = []
        for r in rs:
            if not isinstance(r, list) or len(r) != 2:
                raise MalformedMessage(f"{what} range must be [lo, hi]")
            lo, hi = check_seq(r[0]), check_seq(r[1])
            if lo > hi or lo <= prev:
                raise MalformedMessage(f"{what} ranges must be sorted, disjoint and lo <= hi")
            pairs.append((lo, hi))
            prev = hi
        out[author] = pairs
    return out


def seqs_to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges covering exactly ``seqs``."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def range_count(ranges: Iterable[tuple[int, int]]) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


@dataclass(frozen=True, slots=True)
class Query:
    """A know.query: filters and a page."""
    tag: str | None = None
    author: str | None = None
    kind: str | None = None
    limit: int = 20
    offset: int = 0

    def body(self) -> dict:
        return {k: getattr(self, k) for k in ("tag", "author", "kind", "limit", "offset")
                if getattr(self, k) is not None}


def parse_query(body: Any) -> Query:
    """A know.query body; every filter optional, ``limit`` 1..50, ``offset`` bounded."""
    body = _map(body, "know.query", set(), {"tag", "author", "kind", "limit", "offset"})
    limit, offset = body.get("limit", 20), body.get("offset", 0)
    for name, value, low, top in (("limit", limit, 1, MAX_QUERY_LIMIT),
                                  ("offset", offset, 0, MAX_QUERY_OFFSET)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
            raise MalformedMessage(f"know.query {name} must be an integer from {low} to {top}")
    tag = body.get("tag")
    author = body.get("author")
    kind = body.get("kind")
    return Query(tag=check_tag(tag) if tag is not None else None,
                 author=check_author(author) if author is not None else None,
                 kind=check_kind(kind) if kind is not None else None, limit=limit, offset=offset)


def reply_body(items: list[dict], more: bool) -> dict:
    return {"packets": items, "more": bool(more)}


def parse_reply(body: Any, what: str = "know.want reply") -> tuple[list[tuple[str, bytes, int]], bool]:
    """Items of a know.want / know.query reply (bounded in count and bytes) and the ``more`` flag."""
    body = _map(body, what, {"packets", "more"})
    packets, more = body["packets"], body["more"]
    if not isinstance(packets, list) or not isinstance(more, bool):
        raise MalformedMessage(f"{what} must hold a list of packets and a boolean 'more'")
    if len(packets) > MAX_REPLY_PACKETS:
        raise MessageTooLarge(f"{what} holds {len(packets)} packets, above {MAX_REPLY_PACKETS}")
    items = [parse_item(p, what) for p in packets]
    total = sum(len(raw) for _, raw, _ in items)
    if len(items) > 1 and total > MAX_REPLY_BYTES:
        raise MessageTooLarge(f"{what} carries {total} bytes, above {MAX_REPLY_BYTES}")
    return items, more

