"""Signed envelopes for every object that outlives a hop.

Knowledge packets, model updates, task requests, execution proofs and mailbox
blobs are sealed with :func:`seal` and opened with :class:`Verifier`. The
signature covers ``b"covey/v1/" + kind + b"\\0" + canonical(fields)`` so a
signature made for one kind of object is never valid for another, and the
nonce and timestamp let receivers reject replays and stale copies.

Objects that arrive from a peer go through :class:`core.admission.Admission`,
the one admission step, which composes the pieces here in this order: the
envelope's shape and the signer being the sender (:func:`check_sender`), the
caller's authorisation (membership, tier, capability) and only then the clock,
the signature and the replay memory (:meth:`Verifier.open`), which is kept per
signer so one signer's flood never pushes out another's nonces.
:meth:`Verifier.admit` is the same order without the reporting.
"""
from __future__ import annotations

import heapq
import math
import os
import threading
import time
from typing import Any


from collections.abc import Callable

from core.packing import thread_packer
from core.errors import MalformedMessage, NotTheSender, ReplayDetected, StaleMessage
from core.identity import is_peer_id, verify

DEFAULT_SKEW = 120.0          # seconds a signed object may be older than our clock
DEFAULT_FUTURE_SKEW = 10.0    # seconds it may be ahead of our clock
PER_SIGNER = 1024             # nonces remembered per signer inside the window
MAX_SIGNERS = 1024            # signers with a replay window at once (only authorised signers get one)
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
        return thread_packer().pack(_normalize(obj, 0))
    except (OverflowError, ValueError) as exc:  # e.g. an int beyond 64 bits
        raise MalformedMessage(f"cannot encode value canonically: {exc}") from exc




def _normalize(obj: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"value is nested deeper than {MAX_DEPTH} levels")
    kind = type(obj)   # the common exact types first, each one test (subclasses take the long way)
    if kind is str:
        if obj.isascii():
            return obj
    elif kind is dict:
        for key in obj:
            if type(key) is not str:
                break
        else:
            depth += 1
            out = {}
            for key, value in sorted(obj.items()):
                # a plain leaf is kept without a call (most values of a signed map are)
                kind = type(value)
                if kind is str and value.isascii() or kind is bytes or kind is float and value == value:
                    out[key] = value
                else:
                    out[key] = _normalize(value, depth)
            return out
    elif kind is bytes or kind is float and obj == obj or kind is int and -2 ** 63 <= obj < 2 ** 64:
        return obj   # (a NaN is the one float not equal to itself)
    elif kind is list:
        depth += 1
        return [_normalize(item, depth) for item in obj]
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
    if type(kind) is str and kind.isascii() and type(signer) is str and signer.isascii() \
            and type(nonce) is bytes and type(ts) is float and ts == ts and type(body) is dict:
        # canonical() of the fields map, whose keys are known: written in sorted order at once
        try:
            packed = thread_packer().pack({"body": _normalize(body, 1), "kind": kind, "nonce": nonce,
                                     "signer": signer, "ts": ts})
        except (OverflowError, ValueError) as exc:
            raise MalformedMessage(f"cannot encode value canonically: {exc}") from exc
    else:
        packed = canonical({"kind": kind, "signer": signer, "nonce": nonce, "ts": ts, "body": body})
    return DOMAIN + kind.encode("utf-8") + b"\0" + packed


def envelope_bytes(envelope: dict, signed: bytes) -> bytes:
    """``canonical(envelope)`` (signature included) from the bytes its signature covers, without
    encoding the body again: the signed map is the envelope's minus ``sig``, whose key sorts
    just before ``signer``, so the signature's entry is spliced in there. ``envelope`` must be
    one whose ``signed`` bytes were just made or checked (:func:`seal_signed`, ``*_signed``)."""
    prefix = DOMAIN + envelope["kind"].encode("utf-8") + b"\0"
    tail = _pack(["signer", envelope["signer"], "ts", envelope["ts"]])[1:]   # [1:]: no array header
    if not signed.startswith(prefix) or not signed.endswith(tail) or signed[len(prefix)] != 0x85:
        raise MalformedMessage("these are not the signed bytes of this envelope")
    cut = len(signed) - len(tail)
    return b"\x86" + signed[len(prefix) + 1:cut] + _pack(["sig", envelope["sig"]])[1:] + signed[cut:]


def _pack(items: list) -> bytes:
    """canonical() of a flat list, packed at once when every item is a plain str, bytes or float
    (what an envelope's signer, ts and sig are: the same bytes, without the walk)."""
    for item in items:
        if not (type(item) is str and item.isascii() or type(item) is bytes
                or type(item) is float and item == item):
            return canonical(items)
    return thread_packer().pack(items)


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not kind or "\0" in kind or len(kind) > 64:
        raise MalformedMessage(f"object kind must be a short non-empty string, got {kind!r:.80}")
    return kind


def seal(identity, kind: str, body: dict, *, now: float | None = None) -> dict:
    """Sign ``body`` as an object of ``kind``; returns the envelope map.

    The envelope is ``{"kind", "signer", "nonce", "ts", "body", "sig"}``.
    """
    return seal_signed(identity, kind, body, now=now)[0]


def seal_signed(identity, kind: str, body: dict, *, now: float | None = None) -> tuple[dict, bytes]:
    """:func:`seal`, also returning the bytes the signature covers (for :func:`envelope_bytes`)."""
    _check_kind(kind)
    if not isinstance(body, dict):
        raise MalformedMessage(f"a signed body must be a map, got {type(body).__name__}")
    nonce = os.urandom(NONCE_BYTES)
    ts = float(time.time() if now is None else now)
    signed = _signed_bytes(kind, identity.id, nonce, ts, body)
    sig = identity.sign(signed)
    return {"kind": kind, "signer": identity.id, "nonce": nonce, "ts": ts, "body": body, "sig": sig}, signed


def _check_shape(envelope: Any, kind: str) -> None:
    """Raise MalformedMessage unless ``envelope`` is a well-formed envelope of ``kind``."""
    _check_kind(kind)
    if not isinstance(envelope, dict):
        raise MalformedMessage(f"a signed {kind} object must be a map, got {type(envelope).__name__}")
    if envelope.keys() != _ENVELOPE_KEYS:
        keys = set(envelope)
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
    # An int is bounded before math.isfinite, which raises OverflowError past a float's range
    # (JSON, as POST /tasks carries it, has integers of any size).
    if isinstance(ts, bool) or not (isinstance(ts, int) and -2 ** 63 <= ts < 2 ** 64
                                    or isinstance(ts, float) and math.isfinite(ts)):
        raise MalformedMessage("the timestamp must be a finite number")
    if not isinstance(envelope["body"], dict):
        raise MalformedMessage("the body must be a map")
    sig = envelope["sig"]
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise MalformedMessage(f"the signature must be {SIGNATURE_BYTES} bytes")


def verify_only(envelope: dict, kind: str) -> tuple[str, dict]:
    """Check shape and signature only (no clock, no replay): for stored objects re-read later."""
    _check_shape(envelope, kind)
    return _verify_shaped(envelope, kind)[:2]


def _verify_shaped(envelope: dict, kind: str) -> tuple[str, dict, bytes]:
    """The signature check of an envelope whose shape was checked: (signer, body, signed bytes)."""
    signer = envelope["signer"]
    data = _signed_bytes(kind, signer, envelope["nonce"], envelope["ts"], envelope["body"])
    verify(signer, data, envelope["sig"])
    return signer, envelope["body"], data


def check_sender(envelope: Any, kind: str, sender: str) -> str:
    """The first two admission checks: the envelope's shape, and its signer being ``sender``.

    Returns the signer; raises MalformedMessage or NotTheSender. Nothing is verified yet.
    """
    _check_shape(envelope, kind)
    signer = envelope["signer"]
    if signer != sender:
        raise NotTheSender(f"the signed {kind} is signed by {signer[:16]}, not by its sender {sender[:16]}")
    return signer


class _Window:
    """One signer's remembered nonces (bounded), oldest first in a heap."""
    __slots__ = ("seen", "expiry", "floor")

    def __init__(self) -> None:
        self.seen: dict[bytes, float] = {}
        self.expiry: list[tuple[float, bytes]] = []
        self.floor = -math.inf  # this signer's objects older than this are refused

    def forget_before(self, cutoff: float) -> None:
        while self.expiry and self.expiry[0][0] < cutoff:
            _, nonce = heapq.heappop(self.expiry)
            self.seen.pop(nonce, None)

    def remember(self, nonce: bytes, ts: float, cap: int) -> None:
        while len(self.seen) >= cap:
            old_ts, old = heapq.heappop(self.expiry)
            self.seen.pop(old, None)
            self.floor = max(self.floor, math.nextafter(old_ts, math.inf))
        self.seen[nonce] = ts
        heapq.heappush(self.expiry, (ts, nonce))


class Verifier:
    """Opens signed envelopes: shape, clock skew, signature and replay checks.

    Timestamps may be up to ``skew`` seconds old and ``future_skew`` seconds
    ahead. Replay memory is per signer and bounded: a (signer, nonce) pair is
    remembered while its timestamp is inside the window (older copies fail the
    clock check anyway). If one signer has more than ``max_entries`` pairs in
    the window, its oldest are forgotten and that signer's messages not newer
    than them are refused as stale; other signers are not affected. A global
    horizon follows the latest ``now`` seen (our own clock, never a peer's),
    so a clock stepping back cannot revive forgotten pairs. At most
    ``max_signers`` signers have a window; an empty (expired) window is
    dropped. A replay is never accepted.
    """

    def __init__(self, skew: float = DEFAULT_SKEW, replay_window: float | None = None,
                 max_entries: int = PER_SIGNER, *, future_skew: float = DEFAULT_FUTURE_SKEW,
                 max_signers: int = MAX_SIGNERS):
        if skew <= 0 or future_skew < 0 or max_entries < 1 or max_signers < 1:
            raise ValueError("skews must be positive, max_entries and max_signers at least 1")
        self.skew = float(skew)
        self.future_skew = min(float(future_skew), self.skew)
        # A window shorter than the skew would let a replay through after it.
        self.window = max(float(replay_window or 0.0), self.skew)
        self.max_entries = max_entries
        self.max_signers = max_signers
        self._windows: dict[str, _Window] = {}
        self._horizon = -math.inf  # messages with a timestamp below this are refused
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (signer, nonce) pairs are remembered now."""
        return sum(len(w.seen) for w in self._windows.values())

    def remembers(self, signer: str) -> int:
        """How many nonces of ``signer`` are remembered now."""
        window = self._windows.get(signer)
        return len(window.seen) if window is not None else 0

    def admit(self, envelope: Any, kind: str, sender: str,
              authorize: Callable[[str, dict], None] | None, *, now: float | None = None) -> tuple[str, dict]:
        """The admission step for a signed ``kind`` object that ``sender`` sent; returns ``(signer, body)``.

        In order, each step before anything costlier: the envelope's shape;
        the signer must be the sender (:class:`NotTheSender`);
        ``authorize(signer, body)`` must not raise (membership, tier,
        capability; it sees the body before its signature is checked, so it
        may only use it to find what to check, e.g. the task); then the
        clock, the signature and this signer's replay window. Raises
        MalformedMessage, NotTheSender, whatever ``authorize`` raises,
        StaleMessage, InvalidSignature or ReplayDetected.
        """
        return self.admit_signed(envelope, kind, sender, authorize, now=now)[:2]

    def admit_signed(self, envelope: Any, kind: str, sender: str,
                     authorize: Callable[[str, dict], None] | None, *,
                     now: float | None = None) -> tuple[str, dict, bytes]:
        """:meth:`admit`, also returning the bytes the signature covers (:func:`envelope_bytes`)."""
        signer = check_sender(envelope, kind, sender)
        if authorize is not None:
            authorize(signer, envelope["body"])
        return self._open_shaped(envelope, kind, now)

    def open(self, envelope: dict, kind: str, *, now: float | None = None) -> tuple[str, dict]:
        """Validate an envelope of ``kind`` whose sender is already authorised; returns ``(signer_id, body)``.

        Raises MalformedMessage, StaleMessage, InvalidSignature or ReplayDetected.
        """
        return self.open_signed(envelope, kind, now=now)[:2]

    def open_signed(self, envelope: dict, kind: str, *, now: float | None = None) -> tuple[str, dict, bytes]:
        """:meth:`open`, also returning the bytes the signature covers (:func:`envelope_bytes`)."""
        _check_shape(envelope, kind)
        return self._open_shaped(envelope, kind, now)

    def _open_shaped(self, envelope: dict, kind: str, now: float | None) -> tuple[str, dict, bytes]:
        """:meth:`open` after the shape check: clock, signature, replay."""
        signer = envelope["signer"]
        now = time.time() if now is None else float(now)
        ts = float(envelope["ts"])
        if ts < now - self.skew or ts > now + self.future_skew:
            direction = "old" if ts < now else "far in the future"
            allowed = self.skew if ts < now else self.future_skew
            raise StaleMessage(
                f"signed {kind} from {signer[:16]} is {abs(ts - now):.0f} s {direction} "
                f"(allowed {allowed:.0f} s); check both clocks")
        signer, body, signed = _verify_shaped(envelope, kind)
        nonce = envelope["nonce"]
        with self._lock:
            self._horizon = max(self._horizon, now - self.window)
            window = self._windows.get(signer)
            if window is not None:
                window.forget_before(self._horizon)
            if ts < self._horizon or (window is not None and ts < window.floor):
                raise StaleMessage(
                    f"signed {kind} from {signer[:16]} is older than the replay-protection "
                    f"horizon (the clock stepped back or this signer sent many messages at once); "
                    f"send it again")
            if window is not None and nonce in window.seen:
                raise ReplayDetected(f"signed {kind} from {signer[:16]} was seen before (replay)")
            if window is None:
                window = self._new_window(signer, kind)
            window.remember(nonce, ts, self.max_entries)
        return signer, body, signed

    def _new_window(self, signer: str, kind: str) -> _Window:
        if len(self._windows) >= self.max_signers:
            for other in list(self._windows):
                w = self._windows[other]
                w.forget_before(self._horizon)
                if not w.seen and w.floor < self._horizon:
                    del self._windows[other]
            if len(self._windows) >= self.max_signers:
                raise StaleMessage(f"too many signers inside the replay window; the signed {kind} "
                                   f"from {signer[:16]} is refused, send it again later")
        window = self._windows[signer] = _Window()
        return window
