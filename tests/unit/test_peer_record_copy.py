"""Peer book lookups hand out copies: a caller changing one does not change the book."""
from __future__ import annotations

from dataclasses import fields

from core.store import PeerRecord


def test_copy_is_equal_and_independent():
    rec = PeerRecord(id="a" * 64, name="n", address="127.0.0.1:1", tier="core", reputation=0.7,
                     banned=True, last_seen=1.0, pinned=True, source="lan", mode="none",
                     added_at=2.0, kept=True)
    dup = rec.copy()
    assert dup == rec and dup is not rec and type(dup) is PeerRecord
    assert all(getattr(dup, f.name) == getattr(rec, f.name) for f in fields(PeerRecord))
    dup.tier = "unknown"
    assert rec.tier == "core"
