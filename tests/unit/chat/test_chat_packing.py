"""The chat's per-thread Packer packs exactly as msgpack.packb, and a failed pack leaves nothing behind."""
from __future__ import annotations

import threading

import msgpack
import pytest

from core.packing import pack

SAMPLES = [{"a": b"x", "b": "é", "c": [1, 2.5, None, True, -3, 2 ** 63]}, [1, None, b"\0" * 40], "s", {}]


def test_packs_as_packb():
    for obj in SAMPLES:
        assert pack(obj) == msgpack.packb(obj, use_bin_type=True)


def test_a_failed_pack_leaves_nothing_for_the_next():
    with pytest.raises(TypeError):
        pack({"a": b"half", "b": object()})
    assert pack(SAMPLES[0]) == msgpack.packb(SAMPLES[0], use_bin_type=True)


def test_each_thread_packs_with_its_own_packer():
    out: list[bytes] = []
    threads = [threading.Thread(target=lambda: out.extend(pack(o) for o in SAMPLES * 200)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out.count(pack(SAMPLES[1])) == 4 * 200 and len(out) == 4 * 200 * len(SAMPLES)
