"""The tasks table: tasks this node sent and served, with state, cost and the proof.

Bounded: at most :data:`MAX_ROWS` rows (the oldest go first) and result bytes kept only up
to :data:`KEEP_RESULT` each (a larger result keeps its digest, which is what the proof covers).
"""
from __future__ import annotations

import functools
import json
import time

from core.delegation.protocol import SENT

MAX_ROWS = 1000
KEEP_RESULT = 128 * 1024

MIGRATIONS = [
    ["CREATE TABLE tasks (id TEXT NOT NULL, role TEXT NOT NULL, type TEXT NOT NULL, "
     "peer TEXT NOT NULL, via TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, "
     "ended REAL, request_digest TEXT NOT NULL, request TEXT NOT NULL, cost TEXT, proof TEXT, "
     "result BLOB, result_sha256 TEXT, verified INTEGER NOT NULL DEFAULT 0, error TEXT, "
     "PRIMARY KEY (id, role))",
     "CREATE INDEX tasks_created ON tasks (created)"],
]

def _outcome(*, state: str, verified: bool, proof: dict | None = None, result: bytes | None = None,
             result_sha256: str | None = None, cost: dict | None = None, error: str | None = None,
             ended: float | None = None) -> dict:
    """The outcome columns of a row (a result larger than KEEP_RESULT keeps only its digest);
    ``ended`` defaults to now."""
    return {"state": state, "ended": time.time() if ended is None else ended, "verified": int(verified),
            "proof": None if proof is None else json.dumps(proof),
            "result": result if result is not None and len(result) <= KEEP_RESULT else None,
            "result_sha256": result_sha256, "cost": None if cost is None else json.dumps(cost),
            "error": None if error is None else error[:2000]}


_COLUMNS = ("id", "role", "type", "peer", "via", "state", "created", "ended", "request_digest",
            "request", "cost", "proof", "result", "result_sha256", "verified", "error")


@functools.lru_cache(maxsize=8)   # two column sets in practice: with and without an outcome
def _insert_sql(names: tuple[str, ...]) -> str:
    return f"INSERT OR REPLACE INTO tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


class TaskDB:
    """Rows of the ``tasks`` table as plain dicts (JSON columns decoded)."""

    TRIM_EVERY = 64   # inserts between trims: the table holds at most max_rows + TRIM_EVERY rows

    def __init__(self, store, max_rows: int = MAX_ROWS):
        self.store = store
        self.max_rows = max_rows
        self._since_trim = self.TRIM_EVERY   # trim on the first insert after a start

    def add(self, *, task: str, role: str, type: str, peer: str, via: str, state: str,
            request_digest: str, request: dict, created: float | None = None, **outcome) -> None:
        """Record a task (replacing an older row of the same id and role), with its outcome
        when it is already known (the fields of :meth:`finish`); the table is trimmed now and then."""
        values = {"id": task, "role": role, "type": type, "peer": peer, "via": via, "state": state,
                  "created": time.time() if created is None else created,
                  "request_digest": request_digest, "request": json.dumps(request)}
        if outcome:
            values.update(_outcome(state=state, **outcome))
        self.store.execute(_insert_sql(tuple(values)), tuple(values.values()))
        self._since_trim += 1
        if self._since_trim >= self.TRIM_EVERY:
            self._since_trim = 0
            self.store.execute("DELETE FROM tasks WHERE rowid NOT IN "
                               "(SELECT rowid FROM tasks ORDER BY created DESC LIMIT ?)", (self.max_rows,))

    def finish(self, task: str, role: str, *, state: str, verified: bool, proof: dict | None = None,
               result: bytes | None = None, result_sha256: str | None = None, cost: dict | None = None,
               error: str | None = None, ended: float | None = None) -> None:
        """The outcome of a task: its state, proof, result (if small enough to keep), cost, error."""
        values = _outcome(state=state, verified=verified, proof=proof, result=result,
                          result_sha256=result_sha256, cost=cost, error=error, ended=ended)
        sets = ", ".join(f"{k} = ?" for k in values)
        self.store.execute(f"UPDATE tasks SET {sets} WHERE id = ? AND role = ?",
                           (*values.values(), task, role))

    def interrupted(self) -> int:
        """Sent tasks still waiting when the node stopped: they can no longer be answered."""
        return self.store.execute(
            "UPDATE tasks SET state = 'failed', ended = ?, error = ? WHERE role = ? AND state = 'sent'",
            (time.time(), "this node stopped before the executor answered", SENT))

    def get(self, task: str) -> list[dict]:
        """Every row of ``task`` (sent and, for a task a node sent itself, served)."""
        return [self._row(r) for r in self.store.query(
            "SELECT * FROM tasks WHERE id = ? ORDER BY role", (task,))]

    def find(self, prefix: str) -> list[str]:
        """Ids that start with ``prefix`` (at most 5)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [r["id"] for r in self.store.query(
            "SELECT DISTINCT id FROM tasks WHERE id LIKE ? ESCAPE '\\' LIMIT 5", (escaped + "%",))]

    def list(self, limit: int = 200, role: str | None = None) -> list[dict]:
        """The newest rows first."""
        where, params = ("WHERE role = ?", (role, limit)) if role else ("", (limit,))
        return [self._row(r) for r in self.store.query(
            f"SELECT * FROM tasks {where} ORDER BY created DESC LIMIT ?", params)]

    @staticmethod
    def _row(row) -> dict:
        out = {name: row[name] for name in _COLUMNS}
        for name in ("request", "cost", "proof"):
            out[name] = json.loads(out[name]) if out[name] is not None else None
        out["verified"] = bool(out["verified"])
        return out
