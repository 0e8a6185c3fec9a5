"""Safety numbers, computed as libsignal's NumericFingerprintGenerator does, and their QR code.

Each side's half: ``h = version(2 bytes) | key | id``, then ``h = SHA-512(h | key)``
5200 times; the first 30 bytes become six 5-digit groups (each 5-byte
big-endian chunk mod 100000). The two 30-digit halves are sorted and joined,
so both peers see the same 60 digits. In Covey the key is the raw Ed25519
public key and the id the peer id text; a changed key changes the number.
"""
from __future__ import annotations

import hashlib
import io

import segno

from core.identity import is_peer_id
from core.errors import MalformedMessage

ITERATIONS = 5200
FINGERPRINT_VERSION = 0


def half(key: bytes, stable_id: bytes, iterations: int = ITERATIONS) -> str:
    """30 digits for one side (libsignal's ``getDisplayStringFor``)."""
    digest = FINGERPRINT_VERSION.to_bytes(2, "big") + key + stable_id
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def combine(local: str, remote: str) -> str:
    """The 60 digits both sides see: the two halves in sorted order."""
    return local + remote if local <= remote else remote + local


def safety_number(local_id: str, remote_id: str) -> str:
    """The 60-digit safety number of a conversation between two peer ids."""
    for peer_id in (local_id, remote_id):
        if not is_peer_id(peer_id):
            raise MalformedMessage(f"not a peer id: {peer_id!r:.80}")
    return combine(half(bytes.fromhex(local_id), local_id.encode()),
                   half(bytes.fromhex(remote_id), remote_id.encode()))


def grouped(number: str) -> str:
    """The number as twelve groups of five digits, as shown to people."""
    return " ".join(number[i:i + 5] for i in range(0, len(number), 5))


def qr_png(number: str, scale: int = 6) -> bytes:
    """A PNG of the QR code of ``number`` (QPixmap.loadFromData reads it)."""
    if not (isinstance(number, str) and len(number) == 60 and number.isdigit()):
        raise MalformedMessage("a safety number is 60 digits")
    out = io.BytesIO()
    segno.make(number, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
