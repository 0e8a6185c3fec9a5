"""Canonical JSON for proof payloads and results, and the digests over them.

Canonical here means: keys sorted, no whitespace, UTF-8, no NaN or infinity,
floats as Python's shortest round-trip repr. It is deterministic for a given
value, which is all the digests need. It is not RFC 8785 (numbers such as
1e-07 are written differently), and needs not be: a DSSE signature covers the
payload bytes exactly as sent, so a verifier never re-encodes anything.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from core.errors import MalformedMessage, MessageTooLarge

MAX_RESULT_BYTES = 1024 * 1024


# One encoder for every call (json.dumps with options builds a new one each time). No circular
# check: a cycle still ends in RecursionError, refused below like any other unencodable value.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            check_circular=False)


# The encoder's C part, made once (JSONEncoder.encode makes it again on every call); the same
# output as _ENCODER.encode for maps and lists (None without the C accelerator).
_MAKE = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = None if _MAKE is None else _MAKE(
    None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False)


def canonical_json(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj``; MalformedMessage if it is not plain JSON data."""
    try:
        if _C_ENCODE is not None and type(obj) in (dict, list):
            return "".join(_C_ENCODE(obj, 0)).encode("utf-8")
        return _ENCODER.encode(obj).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise MalformedMessage(f"value cannot be encoded as canonical JSON: {exc}") from exc


def sha256_hex(data: bytes | bytearray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def encode_result(result: object) -> bytes:
    """A task result as the bytes the proof's subject digest covers."""
    if not isinstance(result, dict):
        raise MalformedMessage(f"a task result must be a map, got {type(result).__name__}")
    data = canonical_json(result)
    if len(data) > MAX_RESULT_BYTES:
        raise MessageTooLarge(f"the task result is {len(data)} bytes; the limit is {MAX_RESULT_BYTES}")
    return data


def received_result(value) -> bytes:
    """Result bytes as received from an executor, bounded before anything hashes or parses them."""
    if not isinstance(value, (bytes, bytearray)):
        raise MalformedMessage("the task result must be bytes")
    if len(value) > MAX_RESULT_BYTES:
        raise MessageTooLarge(f"the executor sent a result of {len(value)} bytes; the limit is "
                              f"{MAX_RESULT_BYTES}")
    return bytes(value)


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)   # json.loads with an option makes one per call
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # the decoder's scanner (not in its stubs)


def _scan_whole(text: str) -> dict | None:
    """The map ``text`` is in JSON, when it is exactly one (as an executor writes it): read by the
    decoder's scanner at once (``decode`` also runs two whitespace patterns); None otherwise."""
    if not text.startswith("{"):
        return None
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return None
    return value if end == len(text) else None


def decode_result(data: bytes, max_bytes: int = MAX_RESULT_BYTES) -> dict:
    """Parse result bytes received from an executor (after their digest was checked)."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessage("task result must be bytes")
    if len(data) > max_bytes:
        raise MessageTooLarge(f"the task result is {len(data)} bytes; the limit is {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
        result = _scan_whole(text)
        if result is None:   # whitespace around it, or not JSON: the decoder says what is wrong
            result = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedMessage(f"task result is not valid JSON: {exc}") from exc
    if not isinstance(result, dict):
        raise MalformedMessage("a task result must be a JSON object")
    return result
