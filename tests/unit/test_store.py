"""Store: a real SQLite file: persistence, crash safety, damaged and locked databases."""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import BadRequest, StoreCorrupt, StoreLocked
from core.store import PeerRecord, Store, StoreUnavailable

REPO = Path(__file__).resolve().parents[2]


def peer(n: int, **fields) -> PeerRecord:
    return PeerRecord(id=f"{n:064x}", **fields)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "home" / "covey.db"


def test_new_database_uses_wal_and_the_current_schema(db):
    with Store(db) as store:
        assert store.query_one("PRAGMA journal_mode")[0] == "wal"
        assert store.schema_version() == 2  # 2: the peers.kept column (issue 6, finding 8)
    assert db.exists()


def test_peer_round_trip_with_every_field(db):
    rec = PeerRecord(id="ab" * 32, name="alice", address="10.0.0.1:8102", tier="core",
                     reputation=0.73, banned=True, last_seen=1700000000.5, pinned=True,
                     source="lan", mode="symmetric", added_at=1600000000.0)
    with Store(db) as store:
        store.upsert_peer(rec)
        assert store.get_peer(rec.id) == rec
        assert store.get_peer("cd" * 32) is None


def test_upsert_replaces_an_existing_peer(db):
    with Store(db) as store:
        store.upsert_peer(peer(1, name="old"))
        store.upsert_peer(peer(1, name="new", tier="sandbox"))
        assert [(p.name, p.tier) for p in store.list_peers()] == [("new", "sandbox")]


def test_delete_peer_reports_whether_it_existed(db):
    with Store(db) as store:
        store.upsert_peer(peer(1))
        assert store.delete_peer(peer(1).id) is True
        assert store.delete_peer(peer(1).id) is False
        assert store.list_peers() == []


def test_data_persists_across_reopen(db):
    with Store(db) as store:
        store.upsert_peer(peer(7, name="bob", reputation=0.42))
        store.set_setting("proxy", {"mode": "socks5", "port": 9050})
    with Store(db) as store:
        assert store.get_peer(peer(7).id).reputation == 0.42
        assert store.get_setting("proxy") == {"mode": "socks5", "port": 9050}
        assert store.schema_version() == 2


def test_settings_hold_json_values_and_defaults(db):
    with Store(db) as store:
        assert store.get_setting("missing", default=3) == 3
        for value in (None, True, 1.5, "x", [1, "a"], {"nested": {"k": [1]}}):
            store.set_setting("k", value)
            assert store.get_setting("k", default="absent") == value
        assert store.delete_setting("k") is True
        assert store.get_setting("k", default="absent") == "absent"


def test_setting_that_is_not_json_is_refused(db):
    with Store(db) as store:
        with pytest.raises(BadRequest, match="JSON"):
            store.set_setting("k", {1, 2})


def test_acknowledged_writes_survive_kill_9(db):
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from core.store import Store, PeerRecord
        store = Store({str(db)!r})
        for i in range(20):
            store.upsert_peer(PeerRecord(id=f"{{i:064x}}", name=f"peer{{i}}"))
        store.set_setting("written", 20)
        print("written", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    with Store(db) as store:
        assert store.get_setting("written") == 20
        assert sorted(p.name for p in store.list_peers()) == sorted(f"peer{i}" for i in range(20))


def test_transaction_commits_together_or_not_at_all(db):
    with Store(db) as store:
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.upsert_peer(peer(1))
                store.upsert_peer(peer(2))
                raise RuntimeError("boom")
        assert store.list_peers() == []
        with store.transaction():
            store.upsert_peer(peer(1))
            store.upsert_peer(peer(2))
        assert len(store.list_peers()) == 2


def test_services_add_their_own_tables_through_migrations(db):
    migrations = ["CREATE TABLE knowledge (hash TEXT PRIMARY KEY, body BLOB)",
                  ["ALTER TABLE knowledge ADD COLUMN received REAL",
                   "CREATE INDEX knowledge_received ON knowledge(received)"]]
    with Store(db) as store:
        store.ensure_schema("knowledge", migrations[:1])
        store.execute("INSERT INTO knowledge(hash, body) VALUES (?, ?)", ("h1", b"x"))
        store.ensure_schema("knowledge", migrations)  # applies only the second
        assert store.schema_version("knowledge") == 2
    with Store(db) as store:
        store.ensure_schema("knowledge", migrations)  # nothing left to do
        row = store.query_one("SELECT hash, body, received FROM knowledge")
        assert tuple(row) == ("h1", b"x", None)


def test_database_from_a_newer_version_is_refused(db):
    with Store(db) as store:
        store.execute("UPDATE schema_version SET version = 99 WHERE component = 'core'")
    with pytest.raises(StoreUnavailable, match="newer Covey"):
        Store(db)


# -- damaged files --------------------------------------------------------------
def _assert_corrupt_and_untouched(db: Path) -> None:
    before = digest(db)
    with pytest.raises(StoreCorrupt) as info:
        Store(db)
    message = str(info.value)
    assert str(db) in message
    assert "Nothing was changed" in message and "Move the file aside" in message
    assert digest(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]


def test_garbage_file_is_reported_and_left_alone(db):
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(8192))
    _assert_corrupt_and_untouched(db)


def test_truncated_database_is_reported_and_left_alone(db):
    with Store(db) as store:
        with store.transaction():
            for i in range(2000):
                store.upsert_peer(peer(i, name="x" * 60))
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    _assert_corrupt_and_untouched(db)


# -- locking ---------------------------------------------------------------------
def test_database_held_exclusively_by_another_process_is_reported_as_locked(db):
    db.parent.mkdir(parents=True)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreLocked, match="another node running"):
            Store(db, busy_timeout=0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_write_blocked_by_another_writer_is_reported_as_locked_and_nothing_is_lost(db):
    store = Store(db, busy_timeout=0.1)
    store.upsert_peer(peer(1, name="before"))
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        assert store.get_peer(peer(1).id).name == "before"  # WAL: readers still read
        with pytest.raises(StoreLocked, match=str(db)):
            store.upsert_peer(peer(2))
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.upsert_peer(peer(2, name="after"))
    assert [p.name for p in store.list_peers()] == ["before", "after"]
    store.close()
