"""msgpack encoding with one reusable Packer per thread.

``msgpack.packb`` builds a new Packer (with its buffer) for every call, most of
the cost of packing a small map; a thread's own Packer (never shared: one is not
thread-safe) packs the same bytes (``use_bin_type``, msgpack's default) at a
fraction of it. Used by the wire format, signed envelopes and chat frames.
"""
from __future__ import annotations

import threading

import msgpack

_local = threading.local()


def thread_packer() -> msgpack.Packer:
    """This thread's Packer (bytes as bin, str as str)."""
    packer = _local.__dict__.get("packer")
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer


def pack(obj) -> bytes:
    """``msgpack.packb(obj)``, with this thread's Packer."""
    return thread_packer().pack(obj)
