"""Rows of strangers in the peer book are capped and expire; the user's rows never are (issue 6, 8)."""
from __future__ import annotations

import sqlite3

import pytest

from core import events as ev
from core.events import EventBus
from core.peers import PeerBook, keeps_connected
from core.store import Store


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def pid(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def book(tmp_path):
    store = Store(tmp_path / "covey.db")
    clock = Clock()
    b = PeerBook(store, EventBus(), clock=clock, seen_interval=0, max_unkept=5, unkept_ttl=100.0)
    b.clock = clock
    yield b
    store.close()


def test_strangers_are_capped_and_the_least_recently_seen_goes_first(book):
    removed = []
    book.events.on(ev.PEER_REMOVED, lambda e: removed.append((e.data["peer"], e.data.get("reason"))))
    for n in range(5):
        book.add_or_update(pid(n), source="inbound")
        book.clock.now += 1
    book.seen(pid(0))                      # 0 is the most recently seen now; 1 the least
    book.add_or_update(pid(99), source="inbound")
    ids = {r.id for r in book.list()}
    assert len(ids) == 5 and pid(1) not in ids and pid(0) in ids and pid(99) in ids
    assert removed == [(pid(1), "evicted")]


def test_rows_the_user_acted_on_are_never_evicted_nor_expired(book):
    book.add_or_update(pid(1), address="10.0.0.1:8102", source="manual", pinned=True, kept=True)
    book.add_or_update(pid(2), source="inbound")
    book.set_tier(pid(2), "unknown")       # the user's decision, even to keep it unknown
    book.add_or_update(pid(3), source="lan")
    book.ban(pid(3))
    for n in range(10, 40):
        book.add_or_update(pid(n), source="inbound")
    ids = {r.id for r in book.list()}
    assert {pid(1), pid(2), pid(3)} <= ids and book.unkept_count() == 5
    book.clock.now += 1000
    assert book.expire() == 5
    assert {r.id for r in book.list()} == {pid(1), pid(2), pid(3)}


def test_untouched_strangers_expire_after_the_ttl_counted_from_when_last_seen(book):
    book.add_or_update(pid(1), source="inbound")
    book.add_or_update(pid(2), source="inbound")
    book.clock.now += 60
    book.seen(pid(2))
    book.clock.now += 60                   # 1: 120 s since added; 2: 60 s since seen
    assert book.expire() == 1
    assert [r.id for r in book.list()] == [pid(2)]


def test_a_connected_stranger_is_evicted_last(tmp_path):
    store = Store(tmp_path / "covey.db")
    connected = {pid(0)}
    book = PeerBook(store, EventBus(), clock=Clock(), max_unkept=2, in_use=connected.__contains__)
    book.add_or_update(pid(0), source="inbound")   # least recently seen, but connected
    book.add_or_update(pid(1), source="inbound")
    book.add_or_update(pid(2), source="inbound")
    assert {r.id for r in book.list()} == {pid(0), pid(2)}
    store.close()


def test_only_the_users_peers_are_kept_connected(book):
    book.add_or_update(pid(1), address="h:1", source="inbound")
    book.add_or_update(pid(2), address="h:2", source="manual", kept=True)
    book.add_or_update(pid(3), address="h:3", source="lan")
    book.set_tier(pid(3), "core")
    assert [keeps_connected(book.get(pid(n))) for n in (1, 2, 3)] == [False, True, True]
    book.ban(pid(2))
    assert not keeps_connected(book.get(pid(2)))


def test_an_old_database_marks_the_users_rows_kept_on_upgrade(tmp_path):
    db = tmp_path / "covey.db"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES ('core', 1);
        CREATE TABLE peers (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', address TEXT,
            tier TEXT NOT NULL DEFAULT 'unknown', reputation REAL NOT NULL DEFAULT 0.5,
            banned INTEGER NOT NULL DEFAULT 0, last_seen REAL, pinned INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL DEFAULT 'manual', mode TEXT, added_at REAL NOT NULL DEFAULT 0);
        CREATE INDEX peers_name ON peers(name);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """)
    rows = [(pid(1), "manual", "unknown", 0), (pid(2), "inbound", "unknown", 0),
            (pid(3), "lan", "sandbox", 0), (pid(4), "lan", "unknown", 1), (pid(5), "lan", "unknown", 0)]
    conn.executemany("INSERT INTO peers (id, source, tier, banned) VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    with Store(db) as store:
        kept = {r.id: r.kept for r in store.list_peers()}
    assert kept == {pid(1): True, pid(2): False, pid(3): True, pid(4): True, pid(5): False}
