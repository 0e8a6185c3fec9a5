"""Stored prekey bundles (core.chat.bundles) on a real SQLite file: what a damaged or foreign
row, an old bundle or a used one-time prekey give, and that a stored bundle still opens on the
recipient after both restarted."""
from __future__ import annotations

from types import SimpleNamespace

import msgpack
import pytest

from core.chat import bundles as bmod
from core.chat.bundles import Bundles
from core.chat.db import MIGRATIONS
from core.chat.errors import BadBundle, KeyAgreementFailed
from core.chat.session import Session
from core.chat.x3dh_adapter import verify_bundle
from core.store import Store

from chat_helpers import Peer


@pytest.fixture
def world(tmp_path):
    a, b, c = Peer(tmp_path, "alice"), Peer(tmp_path, "bob"), Peer(tmp_path, "carol")
    store = Store(tmp_path / "alice.db")
    store.ensure_schema("chat", MIGRATIONS)
    chat = SimpleNamespace(node=SimpleNamespace(store=store, identity=a.identity),
                           check_peer=lambda peer: None, connected=lambda peer: True)
    stored = Bundles(chat)
    a.keys.on_agreed = stored.spent
    yield a, b, c, stored, store
    store.close()


def fetched(frm: Peer, to: Peer):
    return verify_bundle(frm.keys.bundle_for(to.id), frm.id, to.id)


def set_envelope(store: Store, peer: str, raw: bytes) -> None:
    store.execute("UPDATE chat_bundles SET envelope = ? WHERE peer = ?", (raw, peer))


async def test_a_stored_bundle_opens_on_the_recipient_after_both_restarted(world):
    a, b, _, stored, _ = world
    stored.remember(fetched(b, a))
    a.reload(), b.reload()                                   # both restart: memory gone
    a.keys.on_agreed = stored.spent
    bundle = stored.load(b.id)
    _, wire = await Session.initiate(a.keys, b.id, bundle, b"after both restarted")
    _, text = await Session.accept(b.keys, a.id, wire)
    assert text == b"after both restarted"
    with pytest.raises(KeyAgreementFailed, match="used already"):   # its one-time prekey is gone now
        stored.load(b.id)
    stored.remember(fetched(b, a))                           # b hands out a fresh one: usable again
    assert stored.load(b.id).x3dh.pre_keys != bundle.x3dh.pre_keys


def test_a_fetch_that_still_carries_the_used_prekey_stays_unusable(world):
    a, b, _, stored, _ = world
    first = fetched(b, a)
    stored.remember(first)
    stored.spent(b.id, next(iter(first.x3dh.pre_keys)))     # used, not yet opened by b ...
    stored.remember(fetched(b, a))                           # ... so b hands out the same one again
    with pytest.raises(KeyAgreementFailed, match="used already"):
        stored.load(b.id)


@pytest.mark.parametrize("bad", ["garbage", "oversized", "not a map", "another peer's", "for another peer"])
def test_a_damaged_or_foreign_row_is_refused_and_deleted(world, bad):
    a, b, c, stored, store = world
    stored.remember(fetched(b, a))
    raw = {"garbage": b"\xc1\xff\x00",
           "oversized": b"\x00" * (bmod.MAX_ENVELOPE + 1),
           "not a map": msgpack.packb([1, 2, 3]),
           "another peer's": msgpack.packb(c.keys.bundle_for(a.id), use_bin_type=True),   # carol's, valid
           "for another peer": msgpack.packb(b.keys.bundle_for(c.id), use_bin_type=True),  # bob's, for carol
           }[bad]
    set_envelope(store, b.id, raw)
    with pytest.raises(BadBundle, match="damaged"):
        stored.load(b.id)
    assert store.query_one("SELECT 1 FROM chat_bundles WHERE peer = ?", (b.id,)) is None
    with pytest.raises(KeyAgreementFailed, match="no prekey bundle"):
        stored.load(b.id)


def test_an_old_bundle_is_refused_and_the_table_is_bounded(world, monkeypatch):
    a, b, c, stored, store = world
    stored.remember(fetched(b, a))
    with pytest.raises(KeyAgreementFailed, match="lifetime"):
        stored.load(b.id, now=stored_time(store, b.id) + bmod.MAX_AGE + 1)
    monkeypatch.setattr(bmod, "MAX_ROWS", 1)
    stored.remember(fetched(b, a))
    stored.remember(fetched(c, a))                          # the longest-stored row goes
    assert [r["peer"] for r in store.query("SELECT peer FROM chat_bundles")] == [c.id]


def stored_time(store: Store, peer: str) -> float:
    return store.query_one("SELECT made_at FROM chat_bundles WHERE peer = ?", (peer,))["made_at"]
