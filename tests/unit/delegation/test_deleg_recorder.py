"""The tasks table's write-behind (core.delegation.recorder) on a real SQLite store."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from core.delegation import recorder as rec_mod
from core.delegation.db import MIGRATIONS, TaskDB
from core.delegation.recorder import Recorder
from core.store import Store

PEER = "ab" * 32


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "covey.db")
    s.ensure_schema("delegation", MIGRATIONS)
    yield s
    s.close()


def recorder(store):
    written = []
    return Recorder(TaskDB(store), store, lambda task, role, row: written.append((task, role, row["state"]))), written


def sent(task: str) -> dict:
    return dict(task=task, role="sent", type="echo", peer=PEER, via="link", state="sent",
                request_digest="0" * 64, request={"args": {"text": "x"}}, created=1.0)


def on_disk(store) -> list[tuple]:
    """The rows as another connection sees them (only what is committed)."""
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT id, role, state, verified FROM tasks ORDER BY id").fetchall()


async def test_a_fast_task_is_written_once_with_its_outcome_after_a_short_delay(store, monkeypatch):
    monkeypatch.setattr(rec_mod, "FLUSH_DELAY", 0.01)
    rec, written = recorder(store)
    commits = []
    store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    rec.add(**sent("t1"))
    rec.finish("t1", "sent", peer=PEER, type="echo", state="done", verified=True, result=b"{}",
               result_sha256="1" * 64, cost={"cpu_seconds": 0.0}, ended=2.0)
    await asyncio.sleep(0)
    assert on_disk(store) == [] and len(rec) == 1          # queued, not written yet
    await asyncio.sleep(0.1)
    assert on_disk(store) == [("t1", "sent", "done", 1)]
    assert written == [("t1", "sent", "done")] and len(commits) == 1 and len(rec) == 0
    assert TaskDB(store).get("t1")[0]["ended"] == 2.0


async def test_tasks_queued_close_together_share_one_commit(store, monkeypatch):
    """Many fast tasks in a row (a busy executor, a requester's loop): one commit for all of them,
    not one per task."""
    monkeypatch.setattr(rec_mod, "FLUSH_DELAY", 0.05)
    rec, written = recorder(store)
    commits = []
    store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    for i in range(10):
        rec.add(**(sent(f"t{i}") | {"state": "done", "verified": True, "result": b"{}",
                                    "result_sha256": "1" * 64}))
        await asyncio.sleep(0)   # a loop turn between tasks, as between two answers
    assert on_disk(store) == [] and len(rec) == 10
    await asyncio.sleep(0.2)
    assert len(on_disk(store)) == 10 and len(commits) == 1 and len(written) == 10


async def test_a_running_task_is_listed_after_a_short_delay_without_a_read(store, monkeypatch):
    monkeypatch.setattr(rec_mod, "FLUSH_DELAY", 0.01)
    rec, written = recorder(store)
    rec.add(**sent("t2"))
    await asyncio.sleep(0)
    assert on_disk(store) == []
    await asyncio.sleep(0.1)
    assert on_disk(store) == [("t2", "sent", "sent", 0)] and written == [("t2", "sent", "sent")]
    rec.finish("t2", "sent", peer=PEER, type="echo", state="failed", verified=False, error="timeout: x")
    rec.flush()
    assert on_disk(store) == [("t2", "sent", "failed", 0)] and written[-1] == ("t2", "sent", "failed")


async def test_flush_writes_everything_queued_and_the_effects_in_one_transaction(store):
    rec, written = recorder(store)
    effects = []
    for i in range(3):
        rec.add(**sent(f"t{i}"), after=lambda i=i: effects.append(store.conn.in_transaction and i))
    rec.flush()
    assert [r[0] for r in on_disk(store)] == ["t0", "t1", "t2"] and effects == [0, 1, 2]
    await asyncio.sleep(0.1)   # the timer, when it runs, writes nothing twice
    assert len(written) == 3


async def test_the_queue_is_bounded(store, monkeypatch):
    monkeypatch.setattr(rec_mod, "MAX_PENDING", 4)
    rec, _ = recorder(store)
    for i in range(4):
        rec.add(**sent(f"t{i}"))
    assert len(rec) == 0 and len(on_disk(store)) == 4    # the fourth one wrote all at once


async def test_after_stop_each_row_is_written_at_once_and_a_closed_store_loses_nothing_else(store):
    rec, _ = recorder(store)
    rec.immediate = True
    rec.add(**sent("t1"))
    assert on_disk(store) == [("t1", "sent", "sent", 0)]
    store.close()
    rec.add(**sent("t2"))   # the store closed: logged, never raised into the caller
    assert len(rec) == 0



async def test_a_row_made_later_is_made_once_when_written_with_its_outcome_merged(store):
    """add_later: the row (its summary, its JSON) is made when the queue is written, not on the
    answer's path; an outcome queued meanwhile is merged into it; one insert, one commit."""
    rec, written = recorder(store)
    made = []

    def make():
        made.append(1)
        return sent("t9")

    commits = []
    store.conn.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    rec.add_later("t9", "sent", make)
    rec.finish("t9", "sent", peer=PEER, type="echo", state="done", verified=True, result=b"{}",
               result_sha256="1" * 64, ended=2.0)
    assert made == [] and on_disk(store) == []
    rec.flush()
    assert made == [1] and on_disk(store) == [("t9", "sent", "done", 1)] and len(commits) == 1
    assert written == [("t9", "sent", "done")] and TaskDB(store).get("t9")[0]["ended"] == 2.0
    rec.immediate = True   # after a stop: made and written at once
    rec.add_later("t10", "sent", lambda: sent("t10"))
    assert [r[0] for r in on_disk(store)] == ["t10", "t9"]
