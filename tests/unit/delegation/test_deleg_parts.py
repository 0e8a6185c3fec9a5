"""Small parts of delegation: the Merkle tree, the per-peer rate limit, the dataset map."""
from __future__ import annotations

import hashlib
import os

import pytest

from core.delegation.datasets import merkle_root
from core.delegation.executor import RateLimit, check_datasets


def rfc6962(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC states it (recursive split at a power of two)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962(leaves[:k]) + rfc6962(leaves[k:])).digest()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 100])
def test_merkle_root_is_rfc6962(n):
    leaves = [os.urandom(n % 13 + 1) for _ in range(n)]
    assert merkle_root(leaves) == rfc6962(leaves)


def test_merkle_root_known_value():
    # Two leaves, written out by hand.
    l0, l1 = hashlib.sha256(b"\x00a").digest(), hashlib.sha256(b"\x00b").digest()
    assert merkle_root([b"a", b"b"]) == hashlib.sha256(b"\x01" + l0 + l1).digest()
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limit_burst_then_refill():
    clock = Clock()
    rl = RateLimit(burst=3, per_second=0.5, clock=clock)
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.take("a") == pytest.approx(2.0)   # one token takes 2 s at 0.5/s
    assert rl.take("b") == 0.0                  # another peer has its own bucket
    clock.now += 2.0
    assert rl.take("a") == 0.0
    assert rl.take("a") > 0


def test_rate_limit_table_is_bounded():
    rl = RateLimit(burst=1, per_second=1, clock=Clock(), max_keys=10)
    for i in range(100):
        rl.take(f"peer{i}")
    assert len(rl._buckets) == 10


@pytest.mark.parametrize("bad", [
    {"d": "relative/path.csv"}, {"d": "/etc/passwd"}, {"d": 5}, {"": "digits"}, {"x" * 65: "digits"},
    "digits",
])
def test_dataset_map_is_validated(bad):
    with pytest.raises(ValueError):
        check_datasets(bad)


def test_dataset_map_accepts_builtins_and_absolute_files():
    ok = {"digits": "digits", "syn": "synthetic", "mine": "/data/x.csv", "arr": "/data/y.npz"}
    assert check_datasets(ok) == ok
