"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^521 - 1).

A secret ``s`` becomes the constant term of a random polynomial ``f`` of
degree ``threshold - 1``; share ``i`` is the point ``(i, f(i))`` for
``i = 1..count``. Any ``threshold`` distinct shares give ``s`` back by
Lagrange interpolation at 0; fewer give a value that is uniformly random and
independent of ``s``.

A share travels as opaque bytes: a 2-byte big-endian index ``x`` followed by
the 66-byte big-endian field element ``y`` (``SHARE_BYTES`` = 68 in total).

    shares = split(secret, threshold=3, count=5)   # list of 5 byte strings
    combine(shares[1:4], threshold=3) == secret

:func:`combine` refuses (``BadRequest``) fewer than ``threshold`` distinct
shares, two different values for one index, and extra shares that do not lie
on the polynomial the first ``threshold`` ones define (a corrupted share).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable

from core.errors import BadRequest

PRIME = 2**521 - 1          # Mersenne prime; every 32-byte secret is a field element
SECRET_BYTES = 32
_Y_BYTES = (PRIME.bit_length() + 7) // 8     # 66
_X_BYTES = 2
SHARE_BYTES = _X_BYTES + _Y_BYTES
MAX_SHARES = 2**(8 * _X_BYTES) - 1


def split(secret: bytes, threshold: int, count: int) -> list[bytes]:
    """Split a 32-byte ``secret`` into ``count`` shares, any ``threshold`` of which recover it."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_BYTES:
        raise BadRequest(f"a Shamir secret must be exactly {SECRET_BYTES} bytes")
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise BadRequest(f"need 1 <= threshold <= count <= {MAX_SHARES}, "
                         f"got threshold={threshold}, count={count}")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return [_encode(x, _evaluate(coefficients, x)) for x in range(1, count + 1)]


def combine(shares: Iterable[bytes], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` distinct shares (extra shares are checked)."""
    points = _distinct_points(shares)
    if threshold < 1:
        raise BadRequest(f"threshold must be at least 1, got {threshold}")
    if len(points) < threshold:
        raise BadRequest(f"not enough shares to reconstruct the secret: "
                         f"need {threshold} distinct shares, got {len(points)}")
    basis, extra = points[:threshold], points[threshold:]
    for x, y in extra:
        if interpolate(basis, x) != y:
            raise BadRequest(f"share {x} does not agree with the others "
                             f"(corrupted or from another secret)")
    value = interpolate(basis, 0)
    if value >= 1 << (8 * SECRET_BYTES):
        raise BadRequest("the shares do not reconstruct a 32-byte secret "
                         "(wrong, corrupted or too few real shares)")
    return value.to_bytes(SECRET_BYTES, "big")


def share_index(share: bytes) -> int:
    """The index ``x`` (1-based) a share was dealt for."""
    return parse_share(share)[0]


def parse_share(share: bytes) -> tuple[int, int]:
    """Decode a share into its point ``(x, y)``, validating length and range."""
    if not isinstance(share, (bytes, bytearray)) or len(share) != SHARE_BYTES:
        raise BadRequest(f"a Shamir share must be exactly {SHARE_BYTES} bytes")
    x = int.from_bytes(share[:_X_BYTES], "big")
    y = int.from_bytes(share[_X_BYTES:], "big")
    if x == 0 or y >= PRIME:
        raise BadRequest("malformed Shamir share (index 0 or value outside the field)")
    return x, y


def interpolate(points: list[tuple[int, int]], at: int) -> int:
    """Value at ``at`` of the unique polynomial of degree < len(points) through ``points``.

    Low level: with fewer points than the dealing threshold this returns a
    value unrelated to the secret, which is exactly what tests check.
    """
    total = 0
    for i, (xi, yi) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                numerator = numerator * (at - xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        total = (total + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    return total


def _distinct_points(shares: Iterable[bytes]) -> list[tuple[int, int]]:
    by_index: dict[int, int] = {}
    for share in shares:
        x, y = parse_share(share)
        if by_index.setdefault(x, y) != y:
            raise BadRequest(f"two different shares carry index {x}")
    return sorted(by_index.items())


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for c in reversed(coefficients):
        result = (result * x + c) % PRIME
    return result


def _encode(x: int, y: int) -> bytes:
    return x.to_bytes(_X_BYTES, "big") + y.to_bytes(_Y_BYTES, "big")
