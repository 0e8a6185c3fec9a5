"""Helpers shared by the knowledge tests (a module with a unique name, unlike conftest)."""
from __future__ import annotations

import itertools

from core.knowledge import protocol as proto

NOW = 1_800_000_000.0


class FakeClock:
    """A settable clock for TTLs and token buckets."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


_counter = itertools.count()


def make(identity, seq, *, now=NOW, **fields) -> proto.Packet:
    """A signed text packet (distinct text each call unless given)."""
    fields.setdefault("text", f"note {next(_counter)}")
    return proto.create(identity, seq, now=now, **fields)
