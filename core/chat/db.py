"""What chat keeps on disk: whether a contact is verified, and peers' public prekey bundles.

``chat_bundles``: the last verified prekey bundle of each chat peer (public,
signed data; see :mod:`core.chat.bundles`, its only reader and writer).

``chat_contacts(peer, name, address, verified, verified_key, verified_at)``:
written only by ``covey chat verify PEER --mark``. ``verified_key`` is the
identity key the safety number was computed from (in Covey the key is the
peer id), ``name``/``address`` how the user knew the contact then. A peer
that now appears under a verified contact's name or address with another key
is a changed key: :meth:`Contacts.conflict` names it, and chat with it is
refused until the user verifies the new key (which retires the old row).
"""
from __future__ import annotations

import time

from core.errors import BadRequest
from core.store import Store

MIGRATIONS = [
    ["CREATE TABLE chat_contacts (peer TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', address TEXT, "
     "verified INTEGER NOT NULL DEFAULT 0, verified_key TEXT, verified_at REAL)"],
    ["CREATE TABLE chat_bundles (peer TEXT PRIMARY KEY, envelope BLOB NOT NULL, opk BLOB NOT NULL, "
     "spent_opk BLOB, made_at REAL NOT NULL, stored_at REAL NOT NULL)"],
]
MAX_CONTACTS = 4096


class Contacts:
    """The verified-contact rows, cached in memory (the service is their only writer)."""

    def __init__(self, store: Store):
        self.store = store
        self._rows = {row["peer"]: dict(row) for row in
                      store.query("SELECT * FROM chat_contacts WHERE verified = 1")}

    def verified(self, peer: str) -> dict | None:
        """The verified row of ``peer`` (None if not verified)."""
        row = self._rows.get(peer)
        return dict(row) if row is not None and row["verified_key"] == peer else None

    def verified_peers(self) -> set[str]:
        """The peer ids that are verified now."""
        return {peer for peer, row in self._rows.items() if row["verified_key"] == peer}

    def mark(self, peer: str, name: str, address: str | None) -> dict:
        """Mark ``peer`` verified; rows of other keys under the same name or address are retired
        (the user compared the new safety number)."""
        if peer not in self._rows and len(self._rows) >= MAX_CONTACTS:
            raise BadRequest(f"at most {MAX_CONTACTS} verified contacts")
        retired = [other for other in self._rows if other != peer and self._same(self._rows[other], name, address)]
        row = {"peer": peer, "name": name or "", "address": address, "verified": 1,
               "verified_key": peer, "verified_at": time.time()}
        with self.store.transaction():
            for other in retired:
                self.store.execute("DELETE FROM chat_contacts WHERE peer = ?", (other,))
            self.store.execute(
                "INSERT INTO chat_contacts (peer, name, address, verified, verified_key, verified_at) "
                "VALUES (:peer, :name, :address, :verified, :verified_key, :verified_at) "
                "ON CONFLICT(peer) DO UPDATE SET name = excluded.name, address = excluded.address, "
                "verified = 1, verified_key = excluded.verified_key, verified_at = excluded.verified_at", row)
        for other in retired:
            del self._rows[other]
        self._rows[peer] = row
        return dict(row)

    def may_conflict(self, peer: str) -> bool:
        """Whether :meth:`conflict` could find anything for ``peer`` (cheap: no peer record needed)."""
        return bool(self._rows) and peer not in self._rows

    def conflict(self, peer: str, name: str, address: str | None) -> dict | None:
        """A verified contact of another key known under ``name`` or ``address`` (None if none)."""
        if peer in self._rows:
            return None
        for row in self._rows.values():
            if self._same(row, name, address):
                return dict(row)
        return None

    @staticmethod
    def _same(row: dict, name: str, address: str | None) -> bool:
        return bool(name and row["name"] == name) or bool(address and row["address"] == address)
