"""Message schema, encoding and limits of the wire protocol (version 1).

A message is a msgpack map ``{"t": type, "i": id, "ts": unix time, "b": body}``
with an optional ``"r"`` (the id of the request this answers). Bodies are
maps of plain types. Nothing here ever unpickles.
"""
from __future__ import annotations

import os
import re
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from core.packing import thread_packer

from core.errors import MalformedMessage, MessageTooLarge, UnsupportedVersion

PROTOCOL = "covey"
VERSION = 1
WS_PATH = "/covey/v1"

# Frame kinds inside an (encrypted) WebSocket frame: first byte of the plaintext.
FRAME_WHOLE = 0   # a complete message
FRAME_PART = 1    # a chunk of a message; more follow
FRAME_END = 2     # the last chunk of a message
FRAME_BATCH = 3   # several small messages, each prefixed by its 4-byte length

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_valid_types: set[str] = set()  # type names already checked against _TYPE_RE
_ID_BATCH = 256
_ID_MASK = (1 << 63) - 1
_id_pool: list[int] = []
_IDS = struct.Struct(f">{_ID_BATCH}Q")


@dataclass(slots=True)
class Message:
    """One typed message."""
    type: str
    body: dict
    id: int = 0
    ts: float = 0.0
    reply_to: int | None = None


def next_id() -> int:
    """An unpredictable, non-zero 63-bit message id (a peer must not guess the id of a
    request sent to another peer). Drawn from os.urandom in batches: cheap per message."""
    try:
        return _id_pool.pop()
    except IndexError:
        _id_pool.extend(i & _ID_MASK for i in _IDS.unpack(os.urandom(8 * _ID_BATCH)) if i & _ID_MASK)
        return _id_pool.pop()


_unpackb = msgpack.unpackb


def encode(msg: Message) -> bytes:
    """Pack a message (fills id and timestamp when unset)."""
    data = {"t": msg.type, "i": msg.id or next_id(), "ts": msg.ts or time.time(), "b": msg.body}
    if msg.reply_to is not None:
        data["r"] = msg.reply_to
    return thread_packer().pack(data)


def decode(data: bytes, max_size: int) -> Message:
    """Unpack and validate a message; MalformedMessage / MessageTooLarge on bad input.

    msgpack builds exact ``dict``/``int``/``float``/``str`` objects, so ``type(x) is``
    checks suffice (and keep bools out of the integer fields)."""
    if len(data) > max_size:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        raw = _unpackb(data)  # msgpack >= 1.0 defaults: raw=False, strict_map_key=True (no kwargs: cheaper)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise MalformedMessage(f"undecodable message: {type(exc).__name__}") from None
    if type(raw) is not dict:
        raise MalformedMessage("message is not a map")
    get = raw.get
    mtype, mid, ts, body, reply_to = get("t"), get("i"), get("ts"), get("b"), get("r")
    if type(mtype) is not str or mtype not in _valid_types:
        if not isinstance(mtype, str) or not _TYPE_RE.match(mtype):
            raise MalformedMessage("message type missing or invalid")
        if len(_valid_types) < 1024:  # bounded: a peer inventing names must not grow it
            _valid_types.add(mtype)
    if type(mid) is not int or mid < 0:
        raise MalformedMessage("message id missing or invalid")
    if type(ts) is not float:
        if type(ts) is not int:
            raise MalformedMessage("message timestamp missing or invalid")
        ts = float(ts)
    if type(body) is not dict:
        raise MalformedMessage("message body must be a map")
    if reply_to is not None and type(reply_to) is not int:
        raise MalformedMessage("reply id invalid")
    return Message(mtype, body, mid, ts, reply_to)


def pack_plain(obj: dict) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack_plain(data: bytes, max_size: int = 4096) -> dict:
    """Decode a small pre-handshake map (hello, choice, error)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) > max_size:
        raise MalformedMessage("handshake message missing or too large")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:
        raise MalformedMessage("undecodable handshake message") from None
    if not isinstance(obj, dict):
        raise MalformedMessage("handshake message is not a map")
    return obj


def check_version(hello: dict) -> None:
    if hello.get("proto") != PROTOCOL:
        raise MalformedMessage("not a Covey peer (protocol name missing)")
    version = hello.get("v")
    if version != VERSION:
        raise UnsupportedVersion(
            f"the peer speaks Covey protocol version {version!r}; this node speaks {VERSION}: "
            "update the older node")


def field(body: dict, name: str, kind: type | tuple, *, max_len: int | None = None,
          optional: bool = False, default: Any = None) -> Any:
    """Typed access to a body field with a clear error (the one validator bodies use)."""
    if name not in body or body[name] is None:
        if optional:
            return default
        raise MalformedMessage(f"field {name!r} is missing")
    value = body[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise MalformedMessage(f"field {name!r} must be a number")
    if not isinstance(value, kind):
        raise MalformedMessage(f"field {name!r} has the wrong type")
    if max_len is not None and hasattr(value, "__len__") and len(value) > max_len:
        raise MessageTooLarge(f"field {name!r} is longer than {max_len}")
    return value
