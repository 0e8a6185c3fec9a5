"""Learning's store: the tables it owns (:data:`MIGRATIONS`) and every query on them.

``ml_tasks``         the tasks this node coordinates (spec as JSON, state, error)
``ml_participants``  the workers that joined each of them, with their slot
``ml_memberships``   the tasks this node was invited to or works on as a worker

Nothing outside this module writes SQL for these tables; checkpoints live in
files (``core.learning.checkpoint``), not here.
"""
from __future__ import annotations

import json
import sqlite3
import time

MIGRATIONS = [
    ["CREATE TABLE ml_tasks (id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, "
     "error TEXT, created REAL NOT NULL, updated REAL NOT NULL)",
     "CREATE TABLE ml_participants (task TEXT NOT NULL, peer TEXT NOT NULL, slot INTEGER NOT NULL, "
     "joined REAL NOT NULL, PRIMARY KEY (task, peer))",
     "CREATE TABLE ml_memberships (task TEXT PRIMARY KEY, coordinator TEXT NOT NULL, spec TEXT NOT NULL, "
     "state TEXT NOT NULL, partition INTEGER, data TEXT, last_round INTEGER NOT NULL DEFAULT 0, "
     "updated REAL NOT NULL)"],
]


# -- coordinated tasks ------------------------------------------------------------
def load_tasks(store) -> list[sqlite3.Row]:
    """Every coordinated task (``id, spec, state, error, created``), oldest first."""
    return store.query("SELECT * FROM ml_tasks ORDER BY created")


def spec_of(row: sqlite3.Row) -> dict:
    """The stored spec map of a task or membership row (ValueError if it is not JSON)."""
    return json.loads(row["spec"])


def save_task(store, task: str, spec: dict, state: str, error: str | None, created: float) -> None:
    """Insert or update a coordinated task."""
    store.execute(
        "INSERT INTO ml_tasks(id, spec, state, error, created, updated) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET spec=excluded.spec, state=excluded.state, "
        "error=excluded.error, updated=excluded.updated",
        (task, json.dumps(spec), state, error, created, time.time()))


def load_participants(store, task: str) -> dict[str, int]:
    """peer -> slot of the workers that joined ``task``."""
    return {row["peer"]: row["slot"]
            for row in store.query("SELECT peer, slot FROM ml_participants WHERE task = ?", (task,))}


def add_participant(store, task: str, peer: str, slot: int) -> None:
    """Record that ``peer`` joined ``task`` in ``slot``."""
    store.execute("INSERT OR REPLACE INTO ml_participants(task, peer, slot, joined) VALUES (?, ?, ?, ?)",
                  (task, peer, slot, time.time()))


# -- memberships (the worker side) ---------------------------------------------------
def load_memberships(store) -> list[dict]:
    """Every membership as a map of the ``Membership`` fields (spec decoded)."""
    return [{"task": row["task"], "coordinator": row["coordinator"], "spec": spec_of(row),
             "state": row["state"], "partition": row["partition"], "data": row["data"],
             "last_round": row["last_round"]}
            for row in store.query("SELECT * FROM ml_memberships")]


def save_membership(store, m) -> None:
    """Insert or update a membership (any object with the ``Membership`` fields)."""
    store.execute(
        "INSERT INTO ml_memberships(task, coordinator, spec, state, partition, data, last_round, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task) DO UPDATE SET coordinator=excluded.coordinator, "
        "spec=excluded.spec, state=excluded.state, partition=excluded.partition, data=excluded.data, "
        "last_round=excluded.last_round, updated=excluded.updated",
        (m.task, m.coordinator, json.dumps(m.spec), m.state, m.partition, m.data, m.last_round, time.time()))


def save_last_round(store, task: str, last_round: int) -> None:
    """Record the last round a membership sent an update for (once per round: one small UPDATE)."""
    store.execute("UPDATE ml_memberships SET last_round = ?, updated = ? WHERE task = ?",
                  (last_round, time.time(), task))
