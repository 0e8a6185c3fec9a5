"""Signed envelopes for every object that outlives a hop.

Knowledge packets, model updates, task requests, execution proofs and mailbox
blobs are sealed with :func:`seal` and opened with :class:`Verifier`. The
signature covers ``b"covey/v1/" + kind + b"\\0" + canonical(fields)`` so a
signature made for one kind of object is never valid for another, and the
nonce and timestamp let receivers reject replays and stale copies.
"""
from __future__ import annotations

import heapq
import math
import os
import threading
import time
from typing import Any

import msgpack

from core.errors import MalformedMessage, ReplayDetected, StaleMessage
from core.identity import is_peer_id, verify

DEFAULT_SKEW = 120.0
NONCE_BYTES = 16
SIGNATURE_BYTES = 64
DOMAIN = b"covey/v1/"
MAX_DEPTH = 32
_ENVELOPE_KEYS = frozenset({"kind", "signer", "nonce", "ts", "body", "sig"})


def canonical(obj: Any) -> bytes:
    """Deterministic msgpack encoding of ``obj`` (maps sorted by key).

    Allowed: None, bool, int (64-bit), float (finite or infinite, never NaN),
    str, bytes, list (tuples encode as lists), dict with str keys. Anything else
    raises MalformedMessage. Floats always encode as float64, so the same value
    always gives the same bytes.
    """
    try:
        return msgpack.packb(_normalize(obj, 0), use_bin_type=True, use_single_float=False)
    except (OverflowError, ValueError) as exc:  # e.g. an int beyond 64 bits
        raise MalformedMessage(f"cannot encode value canonically: {exc}") from exc


def _normalize(obj: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"value is nested deeper than {MAX_DEPTH} levels")
    if obj is None or obj is True or obj is False:
        return obj
    if isinstance(obj, int):
        return int(obj)  # IntEnum and friends become plain ints
    if isinstance(obj, float):
        if math.isnan(obj):
            raise MalformedMessage("NaN cannot be signed (it has many encodings)")
        return float(obj)
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedMessage("string is not valid Unicode text") from None
        return str.__str__(obj)  # a str Enum becomes its value
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, (list, tuple)):
        return [_normalize(item, depth + 1) for item in obj]
    if isinstance(obj, dict):
        if not all(isinstance(key, str) for key in obj):
            raise MalformedMessage("map keys must be strings")
        return {str.__str__(key): _normalize(obj[key], depth + 1) for key in sorted(obj)}
    raise MalformedMessage(f"type {type(obj).__name__} cannot be signed")


def _signed_bytes(kind: str, signer: str, nonce: bytes, ts: float, body: dict) -> bytes:
    fields = {"kind": kind, "signer": signer, "nonce": nonce, "ts": ts, "body": body}
    return DOMAIN + kind.encode("utf-8") + b"\0" + canonical(fields)


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not kind or "\0" in kind or len(kind) > 64:
        raise MalformedMessage(f"object kind must be a short non-empty string, got {kind!r:.80}")
    return kind


def seal(identity, kind: str, body: dict, *, now: float | None = None) -> dict:
    """Sign ``body`` as an object of ``kind``; returns the envelope map.

    The envelope is ``{"kind", "signer", "nonce", "ts", "body", "sig"}``.
    """
    _check_kind(kind)
    if not isinstance(body, dict):
        raise MalformedMessage(f"a signed body must be a map, got {type(body).__name__}")
    nonce = os.urandom(NONCE_BYTES)
    ts = float(time.time() if now is None else now)
    sig = identity.sign(_signed_bytes(kind, identity.id, nonce, ts, body))
    return {"kind": kind, "signer": identity.id, "nonce": nonce, "ts": ts, "body": body, "sig": sig}


def _check_shape(envelope: Any, kind: str) -> None:
    """Raise MalformedMessage unless ``envelope`` is a well-formed envelope of ``kind``."""
    _check_kind(kind)
    if not isinstance(envelope, dict):
        raise MalformedMessage(f"a signed {kind} object must be a map, got {type(envelope).__name__}")
    keys = set(envelope)
    if keys != _ENVELOPE_KEYS:
        missing = sorted(_ENVELOPE_KEYS - keys)
        extra = sorted(str(k) for k in keys - _ENVELOPE_KEYS)
        raise MalformedMessage(f"signed {kind} object has missing fields {missing} / unexpected {extra}")
    if envelope["kind"] != kind:
        raise MalformedMessage(f"expected a signed {kind} object, got {envelope['kind']!r:.80}")
    if not is_peer_id(envelope["signer"]):
        raise MalformedMessage("the signer is not a peer id (64 lowercase hex digits)")
    nonce = envelope["nonce"]
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise MalformedMessage(f"the nonce must be {NONCE_BYTES} bytes")
    ts = envelope["ts"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise MalformedMessage("the timestamp must be a finite number")
    if not isinstance(envelope["body"], dict):
        raise MalformedMessage("the body must be a map")
    sig = envelope["sig"]
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise MalformedMessage(f"the signature must be {SIGNATURE_BYTES} bytes")


def verify_only(envelope: dict, kind: str) -> tuple[str, dict]:
    """Check shape and signature only (no clock, no replay): for stored objects re-read later."""
    _check_shape(envelope, kind)
    signer = envelope["signer"]
    data = _signed_bytes(kind, signer, envelope["nonce"], envelope["ts"], envelope["body"])
    verify(signer, data, envelope["sig"])
    return signer, envelope["body"]


class Verifier:
    """Opens signed envelopes: shape, signature, clock skew and replay checks.

    Memory is bounded: a (signer, nonce) pair is remembered only while its
    timestamp is inside the window (older copies fail the clock check anyway).
    If more than ``max_entries`` pairs are inside the window, the oldest are
    forgotten and every message not newer than them is refused as stale; the
    same horizon follows the latest ``now`` seen, so a clock stepping back
    cannot revive forgotten pairs either. A replay is never accepted.
    """

    def __init__(self, skew: float = DEFAULT_SKEW, replay_window: float | None = None,
                 max_entries: int = 100_000):
        if skew <= 0 or max_entries < 1:
            raise ValueError("skew must be positive and max_entries at least 1")
        self.skew = float(skew)
        # A window shorter than the skew would let a replay through after it.
        self.window = max(float(replay_window or 0.0), self.skew)
        self.max_entries = max_entries
        self._seen: dict[tuple[str, bytes], float] = {}
        self._expiry: list[tuple[float, str, bytes]] = []  # heap by timestamp
        self._floor = -math.inf  # messages with a timestamp below this are refused
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (signer, nonce) pairs are remembered now."""
        return len(self._seen)

    def open(self, envelope: dict, kind: str, *, now: float | None = None) -> tuple[str, dict]:
        """Validate an envelope of ``kind``; returns ``(signer_id, body)``.

        Raises MalformedMessage, InvalidSignature, StaleMessage or ReplayDetected.
        """
        signer, body = verify_only(envelope, kind)
        now = time.time() if now is None else float(now)
        ts = float(envelope["ts"])
        if abs(ts - now) > self.skew:
            direction = "old" if ts < now else "far in the future"
            raise StaleMessage(
                f"signed {kind} from {signer[:16]} is {abs(ts - now):.0f} s {direction} "
                f"(allowed skew {self.skew:.0f} s); check both clocks")
        key = (signer, envelope["nonce"])
        with self._lock:
            self._forget_before(now - self.window)
            if ts < self._floor:
                raise StaleMessage(
                    f"signed {kind} from {signer[:16]} is older than the replay-protection "
                    f"horizon (the clock stepped back or many messages arrived at once); "
                    f"send it again")
            if key in self._seen:
                raise ReplayDetected(f"signed {kind} from {signer[:16]} was seen before (replay)")
            self._remember(key, ts)
        return signer, body

    def _forget_before(self, cutoff: float) -> None:
        # Raising the floor too keeps a clock that steps back from reopening
        # the door for pairs already forgotten.
        self._floor = max(self._floor, cutoff)
        while self._expiry and self._expiry[0][0] < cutoff:
            _, signer, nonce = heapq.heappop(self._expiry)
            self._seen.pop((signer, nonce), None)

    def _remember(self, key: tuple[str, bytes], ts: float) -> None:
        while len(self._seen) >= self.max_entries:
            old_ts, signer, nonce = heapq.heappop(self._expiry)
            self._seen.pop((signer, nonce), None)
            self._floor = max(self._floor, math.nextafter(old_ts, math.inf))
        self._seen[key] = ts
        heapq.heappush(self._expiry, (ts, key[0], key[1]))
