"""Shared set-up for the chat unit tests: identities, homes, keys and an open session pair."""
from __future__ import annotations

from pathlib import Path

from core.identity import Identity
from core.chat.session import Session
from core.chat.x3dh_adapter import ChatKeys, verify_bundle


class Peer:
    """A node's identity, home and chat keys."""

    def __init__(self, root: Path, name: str):
        self.home = root / name
        self.home.mkdir()
        self.identity = Identity.generate(name)
        self.id = self.identity.id
        self.keys = ChatKeys.load_or_create(self.home, self.identity)

    def reload(self) -> ChatKeys:
        """As after a restart: new ChatKeys from what the home holds."""
        self.keys = ChatKeys.load_or_create(self.home, self.identity)
        return self.keys


async def open_pair(a: Peer, b: Peer, first: bytes = b"hello") -> tuple[Session, Session]:
    """A initiates with B's bundle, B accepts; returns (A's session, B's session)."""
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    sa, wire = await Session.initiate(a.keys, b.id, bundle, first)
    sb, text = await Session.accept(b.keys, a.id, wire)
    assert text == first
    return sa, sb
