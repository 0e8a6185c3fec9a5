"""The chat protocol: transport message bodies and the frames inside the encryption.

Transport message types (bodies are maps, each field checked here):

- ``chat.bundle`` request ``{}`` -> ``{"bundle": envelope}``: this node's signed
  prekey bundle made for the asking peer (needs CHAT).
- ``chat.msg`` one-way ``{"s": session id (8 bytes), "w": ratchet wire bytes}``
  (needs CHAT). Only session ciphertext travels; the sender is the
  authenticated connection's peer, and the session binds it into the AD.
- ``chat.reset`` one-way ``{"s": session id}``: "I hold no such session"
  (after a restart, or a session past the skip bound): start a new one.
- ``chat.request`` request ``{"text": one line}`` -> ``{"ok": true}``: a contact
  request, the only thing an UNKNOWN peer may send (needs CONTACT_REQUEST).

Frames (the plaintext of one ratchet message):

- data, every message (fixed fields, then the content: no second encoding to
  parse): the byte ``d``, the sender's delivery epoch (8 bytes), seq and base
  (the sender will not send seqs below it again; 1 <= base <= seq), each a
  big-endian unsigned 64-bit integer, then the content bytes.
- the others are a msgpack map whose ``k`` says the frame type:
- ``a`` ack: ``e`` the epoch acknowledged, ``u`` upto, ``s`` selective seqs,
  ``r`` read mark or nil.
- ``t`` typing: ``on`` bool.

Content (the ``p`` of a data frame; a msgpack map whose ``c`` says the kind,
``g`` a group id for group conversations, nil for one-to-one):

- ``text``: ``text``, ``ts`` (sender's clock), ``ttl`` (disappearing timer, s).
- ``timer``: ``ttl``: the conversation's timer changed.
- ``close``: the peer closed the conversation: wipe it.
- ``file``: ``f`` a file offer (a map checked by :func:`core.chat.files.parse_offer`:
  id, name, size, media type, chunk size, manifest digest, per-file key).
- ``group``: ``m`` a group's membership (signed by its creator; :mod:`core.chat.groups`).
- ``leave``: the sender leaves the group ``g`` (to its creator).

A group's ``text`` also carries ``m``, the membership the author holds.
"""
from __future__ import annotations

import math
import struct
from typing import NamedTuple

import msgpack

from core.errors import MalformedMessage, MessageTooLarge
from core.chat.delivery import MAX_SEQ, Ack, Data
from core.packing import pack

BUNDLE = "chat.bundle"
MSG = "chat.msg"
RESET = "chat.reset"
REQUEST = "chat.request"

SID = 8                   # bytes of session id on the wire (a prefix of the initiator's ephemeral key)
EPOCH = 8                 # bytes of a delivery epoch
MAX_TEXT = 16 * 1024      # bytes of UTF-8 text in one message
MAX_REQUEST_TEXT = 280    # characters of a contact request
MAX_ROSTER = 8 * 1024     # bytes of a group's signed membership carried in a content
MAX_CONTENT = MAX_TEXT + MAX_ROSTER + 256
MAX_FRAME = MAX_CONTENT + 128
MAX_WIRE = MAX_FRAME + 12 + 16 + 128 + 128   # ratchet overhead: nonce, tag, X3DH header, header
MAX_SEL = 256             # selective acks in one ack frame
MAX_GROUP_ID = 64
TIMERS = {"off": 0, "30s": 30, "5m": 300, "1h": 3600, "1d": 86400}
TIMER_NAMES = {v: k for k, v in TIMERS.items()}

FRAME_DATA, FRAME_ACK, FRAME_TYPING = "d", "a", "t"
TEXT, TIMER, CLOSE, FILE, GROUP, LEAVE = "text", "timer", "close", "file", "group", "leave"
CONTENT_KINDS = (TEXT, TIMER, CLOSE, FILE, GROUP, LEAVE)


class Typing(NamedTuple):
    on: bool


class Content(NamedTuple):
    """What one data frame carries (immutable; a named tuple: one is made per message)."""
    kind: str
    text: str = ""
    ts: float = 0.0
    ttl: int = 0
    group: str | None = None
    roster: dict | None = None     # a group's signed membership (checked by core.chat.groups)
    file: dict | None = None   # FILE: the offer map (fields checked by core.chat.files)


def _unpack(data: bytes, max_len: int, what: str) -> dict:
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessage(f"{what} must be bytes")
    if len(data) > max_len:
        raise MessageTooLarge(f"{what} of {len(data)} bytes exceeds {max_len}")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, max_array_len=MAX_SEL,
                              max_map_len=16, max_bin_len=max_len, max_str_len=max_len, max_ext_len=0)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise MalformedMessage(f"{what} is not valid msgpack") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"{what} must be a map")
    return obj


def _int(obj: dict, key: str, lo: int, hi: int, what: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedMessage(f"{what}: field {key!r} must be an integer in [{lo}, {hi}]")
    return value


def _epoch(obj: dict, what: str) -> bytes:
    value = obj.get("e")
    if not isinstance(value, bytes) or len(value) != EPOCH:
        raise MalformedMessage(f"{what}: epoch must be {EPOCH} bytes")
    return value


# -- transport bodies -------------------------------------------------------------
def msg_body(sid: bytes, wire: bytes) -> dict:
    return {"s": sid, "w": wire}


def parse_msg(body: dict) -> tuple[bytes, bytes]:
    """(session id, wire bytes) of a ``chat.msg`` body."""
    sid, wire = body.get("s"), body.get("w")
    if not isinstance(sid, bytes) or len(sid) != SID:
        raise MalformedMessage(f"chat message: session id must be {SID} bytes")
    if not isinstance(wire, bytes):
        raise MalformedMessage("chat message: ciphertext must be bytes")
    if len(wire) > MAX_WIRE:
        raise MessageTooLarge(f"chat message of {len(wire)} bytes exceeds {MAX_WIRE}")
    return sid, wire


def parse_reset(body: dict) -> bytes:
    sid = body.get("s")
    if not isinstance(sid, bytes) or len(sid) != SID:
        raise MalformedMessage(f"chat reset: session id must be {SID} bytes")
    return sid


def clean_request_text(text) -> str:
    """A contact request's one short printable line (MalformedMessage/MessageTooLarge if not)."""
    if not isinstance(text, str):
        raise MalformedMessage("a contact request must carry text")
    if len(text) > MAX_REQUEST_TEXT:
        raise MessageTooLarge(f"a contact request is at most {MAX_REQUEST_TEXT} characters")
    if not text.strip() or any(not ch.isprintable() for ch in text):
        raise MalformedMessage("a contact request is one non-empty line of printable text")
    return text.strip()


# -- frames -----------------------------------------------------------------------
_DATA = struct.Struct(">8sQQ")        # a data frame's epoch, seq and base, after its b"d"
_DATA_KIND = FRAME_DATA.encode()       # never the first byte of a msgpack map (the other frames)
DATA_HEAD = 1 + _DATA.size


def encode_data(epoch: bytes, data: Data, base: int) -> bytes:
    if len(epoch) != EPOCH:
        raise ValueError(f"a delivery epoch is {EPOCH} bytes")
    return _DATA_KIND + _DATA.pack(epoch, data.seq, base) + data.payload


def encode_ack(epoch: bytes, ack: Ack) -> bytes:
    return pack({"k": FRAME_ACK, "e": epoch, "u": ack.upto, "s": list(ack.sel), "r": ack.read})


def encode_typing(on: bool) -> bytes:
    return pack({"k": FRAME_TYPING, "on": bool(on)})


def decode_frame(plaintext: bytes) -> tuple[str, object]:
    """Parse a decrypted frame -> ``("d", (epoch, Data, base))``, ``("a", (epoch, Ack))`` or ``("t", Typing)``."""
    if isinstance(plaintext, (bytes, bytearray)) and plaintext[:1] == _DATA_KIND:
        if len(plaintext) > MAX_FRAME:
            raise MessageTooLarge(f"chat frame of {len(plaintext)} bytes exceeds {MAX_FRAME}")
        if len(plaintext) < DATA_HEAD:
            raise MalformedMessage(f"data frame: shorter than its {DATA_HEAD}-byte head (epoch, seq, base)")
        epoch, seq, base = _DATA.unpack_from(plaintext, 1)
        if not 1 <= seq <= MAX_SEQ:
            raise MalformedMessage(f"data frame: field 'q' must be an integer in [1, {MAX_SEQ}]")
        if not 1 <= base <= seq:
            raise MalformedMessage("data frame: field 'b' must be an integer in [1, seq]")
        return FRAME_DATA, (epoch, Data(seq, bytes(plaintext[DATA_HEAD:]), 1), base)
    obj = _unpack(plaintext, MAX_FRAME, "chat frame")
    kind = obj.get("k")
    if kind == FRAME_ACK:
        sel = obj.get("s")
        if not isinstance(sel, list):
            raise MalformedMessage("ack frame: selective acks must be a list")
        read = obj.get("r")
        if read is not None:
            read = _int(obj, "r", 0, MAX_SEQ, "ack frame")
        # Ranges of seqs are checked against what was sent by Delivery.on_ack (BadReceipt).
        return kind, (_epoch(obj, "ack frame"), Ack(_int(obj, "u", 0, MAX_SEQ, "ack frame"), tuple(sel), read))
    if kind == FRAME_TYPING:
        on = obj.get("on")
        if not isinstance(on, bool):
            raise MalformedMessage("typing frame: 'on' must be a boolean")
        return kind, Typing(on)
    raise MalformedMessage("unknown chat frame type")


# -- content ----------------------------------------------------------------------
def encode_content(content: Content) -> bytes:
    obj: dict = {"c": content.kind}
    if content.group is not None:
        obj["g"] = content.group
    if content.roster is not None:
        obj["m"] = content.roster
    if content.kind == TEXT:
        obj.update(text=content.text, ts=content.ts, ttl=content.ttl)
    elif content.kind == TIMER:
        obj["ttl"] = content.ttl
    elif content.kind == FILE:
        obj["f"] = content.file
    return pack(obj)


def check_text(text) -> str:
    """A message's text (MessageTooLarge over MAX_TEXT bytes, MalformedMessage if empty or not text)."""
    if not isinstance(text, str):
        raise MalformedMessage("a chat message must be text")
    if text.isascii():      # one byte a character (no encoding to count them)
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise MalformedMessage("a chat message must be valid Unicode text") from None
    if size > MAX_TEXT:
        raise MessageTooLarge(f"a chat message of {size} bytes exceeds {MAX_TEXT}")
    if not text or text.isspace():    # what strip() would leave empty
        raise MalformedMessage("a chat message must not be empty")
    return text


def decode_content(payload: bytes) -> Content:
    """Parse the content of a data frame (every field checked)."""
    obj = _unpack(payload, MAX_CONTENT, "chat content")
    kind = obj.get("c")
    if kind not in CONTENT_KINDS:
        raise MalformedMessage("unknown chat content kind")
    group = obj.get("g")
    if group is not None and (not isinstance(group, str) or not 0 < len(group) <= MAX_GROUP_ID):
        raise MalformedMessage("chat content: bad group id")
    roster = obj.get("m")
    if roster is not None and not isinstance(roster, dict):
        raise MalformedMessage("chat content: a group membership must be a map")
    if (kind in (GROUP, LEAVE) or roster is not None) and group is None:
        raise MalformedMessage(f"chat content: {kind} needs a group id")
    if kind == GROUP and roster is None:
        raise MalformedMessage("chat content: a group update carries its membership")
    if kind == TEXT:
        ts = obj.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) \
                or not 0 <= ts < 2 ** 40:
            raise MalformedMessage("chat text: bad timestamp")
        return Content(TEXT, check_text(obj.get("text")), float(ts), _ttl(obj), group, roster)
    if kind == TIMER:
        return Content(TIMER, ttl=_ttl(obj), group=group)
    if kind == FILE:
        offer = obj.get("f")
        if not isinstance(offer, dict):
            raise MalformedMessage("chat content: a file offer must be a map")
        return Content(FILE, file=offer, group=group)
    return Content(kind, group=group, roster=roster)


def _ttl(obj: dict) -> int:
    ttl = obj.get("ttl")
    if ttl not in TIMER_NAMES or isinstance(ttl, bool):
        raise MalformedMessage(f"chat content: timer must be one of {sorted(TIMER_NAMES)} seconds")
    return ttl


def parse_timer(name: str) -> int:
    """Seconds of a timer setting name (off, 30s, 5m, 1h, 1d)."""
    try:
        return TIMERS[name]
    except (KeyError, TypeError):
        raise MalformedMessage(f"timer must be one of {', '.join(TIMERS)}") from None
