"""The node's database: one SQLite file (stdlib sqlite3, WAL).

Holds the peer book and settings; other services keep their tables here too
through :meth:`Store.ensure_schema`. Every write commits at once, so a node
killed with SIGKILL loses nothing it acknowledged. A damaged file is reported
and left untouched; a file held by another process is reported as locked.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from core.errors import BadRequest, StoreCorrupt, StoreLocked, StoreUnavailable
from core.files import private_dir, private_file

log = logging.getLogger("covey.store")

BUSY_TIMEOUT = 2.0  # seconds to wait for another writer before StoreLocked
CORE_COMPONENT = "core"
_SQLITE_HEADER = b"SQLite format 3\0"
_BUSY_CODES = {5, 6}      # SQLITE_BUSY, SQLITE_LOCKED
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

# The core schema: each entry is one migration (a list of statements), applied
# in order exactly once; never edit an entry that has shipped, append a new one.
MIGRATIONS: list[Sequence[str]] = [
    (
        """CREATE TABLE peers (
               id TEXT PRIMARY KEY,
               name TEXT NOT NULL DEFAULT '',
               address TEXT,
               tier TEXT NOT NULL DEFAULT 'unknown',
               reputation REAL NOT NULL DEFAULT 0.5,
               banned INTEGER NOT NULL DEFAULT 0,
               last_seen REAL,
               pinned INTEGER NOT NULL DEFAULT 0,
               source TEXT NOT NULL DEFAULT 'manual',
               mode TEXT,
               added_at REAL NOT NULL DEFAULT 0
           )""",
        "CREATE INDEX peers_name ON peers(name)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # kept: the user added, pinned, trusted or banned this peer. Rows without it
        # (strangers that connected, LAN finds) are capped and expire (core.peers).
        "ALTER TABLE peers ADD COLUMN kept INTEGER NOT NULL DEFAULT 0",
        "UPDATE peers SET kept = 1 WHERE source IN ('manual', 'bootstrap') OR pinned = 1 "
        "OR tier != 'unknown' OR banned = 1",
    ),
]


@dataclass
class PeerRecord:
    """One row of the peer book."""
    id: str
    name: str = ""
    address: str | None = None
    tier: str = "unknown"  # core|sandbox|external|unknown
    reputation: float = 0.5
    banned: bool = False
    last_seen: float | None = None
    pinned: bool = False    # key explicitly given by the user (--key)
    source: str = "manual"  # manual|lan|bootstrap|inbound
    mode: str | None = None  # last negotiated encryption mode
    added_at: float = 0.0
    kept: bool = False      # the user acted on it (added, pinned, trusted, banned): never evicted

    def copy(self) -> PeerRecord:
        """A copy (every field is immutable, so a shallow one): 30x cheaper than
        ``dataclasses.replace``, which the peer book paid on every lookup."""
        new = object.__new__(PeerRecord)
        new.__dict__.update(self.__dict__)
        return new


_PEER_COLUMNS = ("id", "name", "address", "tier", "reputation", "banned", "last_seen",
                 "pinned", "source", "mode", "added_at", "kept")


def _peer_from_row(row: sqlite3.Row) -> PeerRecord:
    return PeerRecord(id=row["id"], name=row["name"], address=row["address"], tier=row["tier"],
                      reputation=float(row["reputation"]), banned=bool(row["banned"]),
                      last_seen=row["last_seen"], pinned=bool(row["pinned"]),
                      source=row["source"], mode=row["mode"], added_at=float(row["added_at"]),
                      kept=bool(row["kept"]))


class Store:
    """The SQLite database of one node home."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._in_transaction = False
        self._conn: sqlite3.Connection | None = None
        private_dir(self.path.parent)
        self._check_integrity()
        self._restrict_files()
        try:
            with self._translate():
                self._conn = sqlite3.connect(self.path, timeout=busy_timeout,
                                             isolation_level=None, check_same_thread=False)
                self._conn.row_factory = sqlite3.Row
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    log.warning("%s: journal mode is %s, not WAL", self.path, mode)
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self.ensure_schema(CORE_COMPONENT, MIGRATIONS)
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------
    def _check_integrity(self) -> None:
        """Run ``PRAGMA quick_check`` on a read-only connection, so a damaged file is never written."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
        if header != _SQLITE_HEADER:
            raise self._corrupt("it is not an SQLite database")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        side_files = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        absent_before = [f for f in side_files if not f.exists()]
        conn = None
        try:
            with self._translate():
                conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout,
                                       isolation_level=None, check_same_thread=False)
                rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except StoreCorrupt:
            self._remove_empty(absent_before)
            raise
        finally:
            if conn is not None:
                conn.close()
        if rows != ["ok"]:
            self._remove_empty(absent_before)
            raise self._corrupt("; ".join(str(r) for r in rows))

    def _restrict_files(self) -> None:
        """The database and its WAL are 0600: SQLite gives -wal/-shm the mode of the main file,
        so creating that one 0600 (and fixing older homes' files) covers all three."""
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                private_file(side)

    @staticmethod
    def _remove_empty(created: list[Path]) -> None:
        """Tidy the empty -wal/-shm files our read-only check created beside a damaged file."""
        wal = [f for f in created if f.name.endswith("-wal")]
        if any(f.exists() and f.stat().st_size > 0 for f in wal):
            return  # something was written there: leave it for recovery
        for f in created:
            f.unlink(missing_ok=True)

    def _corrupt(self, why: str) -> StoreCorrupt:
        return StoreCorrupt(
            f"the database {self.path} is damaged ({why}). Nothing was changed. Move the file "
            f"aside (keep it for recovery) and start again: the node then starts with an empty "
            f"peer book", path=str(self.path))

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn sqlite3 errors into the node's typed errors."""
        try:
            yield
        except sqlite3.Error as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            text = str(exc)
            if code in _BUSY_CODES or "locked" in text:
                raise StoreLocked(
                    f"the database {self.path} is locked by another process (is another node "
                    f"running with this home?)", path=str(self.path)) from exc
            if code in _CORRUPT_CODES or "malformed" in text or "not a database" in text:
                raise self._corrupt(text) from exc
            if isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError)) and not \
                    isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
                raise StoreUnavailable(f"the database {self.path} could not be used: {text}",
                                       path=str(self.path)) from exc
            raise

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error as exc:
                    log.warning("closing %s failed: %s", self.path, exc)
                self._conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable(f"the database {self.path} is closed")
        return self._conn

    # -- generic helpers ---------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run one write statement (committed at once unless inside ``transaction``); returns rowcount."""
        with self._lock, self._translate():
            return self.conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        """All rows of a query (rows index by column name)."""
        with self._lock, self._translate():
            return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        with self._lock, self._translate():
            return self.conn.execute(sql, params).fetchone()

    def query_row(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row:
        """The first row of a query that always has one (an aggregate, or a row that is never
        deleted and was just found): LookupError if there is none after all."""
        row = self.query_one(sql, params)
        if row is None:
            raise LookupError(f"the store has no row for {sql[:80]!r}")
        return row

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Group writes atomically: ``with store.transaction(): ...`` commits at the end or rolls back.

        Nested use joins the outer transaction.
        """
        with self._lock:
            if self._in_transaction:
                yield self
                return
            with self._translate():
                self.conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self
            except BaseException:
                self._in_transaction = False
                with self._translate():
                    self.conn.execute("ROLLBACK")
                raise
            self._in_transaction = False
            with self._translate():
                self.conn.execute("COMMIT")

    def schema_version(self, component: str = CORE_COMPONENT) -> int:
        """How many migrations of ``component`` are applied (0 if none)."""
        with self._lock, self._translate():
            exists = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
            if not exists:
                return 0
            row = self.conn.execute("SELECT version FROM schema_version WHERE component = ?",
                                    (component,)).fetchone()
        return int(row[0]) if row else 0

    def ensure_schema(self, component: str, migrations: Sequence[Sequence[str] | str]) -> None:
        """Apply the migrations of ``component`` not applied yet, each in its own transaction.

        Services own their tables this way (e.g. ``store.ensure_schema("knowledge", [...])``).
        A database from a newer Covey (more migrations than known) is refused.
        """
        with self._lock:
            with self._translate():
                self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                  "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            current = self.schema_version(component)
            if current > len(migrations):
                raise StoreUnavailable(
                    f"the database {self.path} was written by a newer Covey ({component} schema "
                    f"version {current}, this version knows {len(migrations)}); upgrade Covey",
                    path=str(self.path))
            for version in range(current + 1, len(migrations) + 1):
                statements = migrations[version - 1]
                if isinstance(statements, str):
                    statements = [statements]
                with self.transaction():
                    for statement in statements:
                        self.execute(statement)
                    self.execute("INSERT INTO schema_version(component, version) VALUES (?, ?) "
                                 "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                                 (component, version))
                log.info("%s: %s schema migrated to version %d", self.path, component, version)

    # -- peers ---------------------------------------------------------------
    def upsert_peer(self, rec: PeerRecord) -> None:
        """Insert or replace the peer row with ``rec``'s values."""
        values = (rec.id, rec.name, rec.address, rec.tier, float(rec.reputation), int(rec.banned),
                  rec.last_seen, int(rec.pinned), rec.source, rec.mode, float(rec.added_at),
                  int(rec.kept))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _PEER_COLUMNS[1:])
        self.execute(f"INSERT INTO peers ({', '.join(_PEER_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(_PEER_COLUMNS))}) "
                     f"ON CONFLICT(id) DO UPDATE SET {updates}", values)

    def get_peer(self, peer_id: str) -> PeerRecord | None:
        row = self.query_one("SELECT * FROM peers WHERE id = ?", (peer_id,))
        return _peer_from_row(row) if row else None

    def list_peers(self) -> list[PeerRecord]:
        """All peers, oldest first."""
        return [_peer_from_row(r) for r in self.query("SELECT * FROM peers ORDER BY added_at, id")]

    def delete_peer(self, peer_id: str) -> bool:
        """Remove a peer; True if it existed."""
        return self.execute("DELETE FROM peers WHERE id = ?", (peer_id,)) > 0

    # -- settings ------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        row = self.query_one("SELECT value FROM settings WHERE key = ?", (key,))
        if row is None:
            return default
        try:
            return json.loads(row["value"])
        except json.JSONDecodeError:
            log.warning("%s: setting %r is not valid JSON; using the default", self.path, key)
            return default

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serializable value under ``key``."""
        try:
            text = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"setting {key!r} must be a JSON value: {exc}") from exc
        self.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, text))

    def delete_setting(self, key: str) -> bool:
        return self.execute("DELETE FROM settings WHERE key = ?", (key,)) > 0
