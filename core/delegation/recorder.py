"""Write-behind for the tasks table: rows are written off the request path, batched.

A task's rows are queued while its answer goes out (executor) or is returned (requester) and
committed together, with every other row queued meanwhile, :data:`FLUSH_DELAY` seconds after the
first of them was queued: a fast task costs one insert per side (its ``sent`` row and outcome
merge), and a node serving or sending many tasks shares one commit among all of them instead of
paying one per task. Every read of the table flushes first (:meth:`Recorder.flush`), and so does
the service's stop, so nothing queued is lost on a clean stop and a task is listed as soon as its
call returned. A row may be queued as a function that makes it (:meth:`Recorder.add_later`):
then even building it costs nothing on the answer's path. Bounded: at :data:`MAX_PENDING`
queued tasks the queue is written at once.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.delegation.db import TaskDB
from core.errors import CoveyError

log = logging.getLogger("covey.delegation")

FLUSH_DELAY = 0.05
MAX_PENDING = 256


class _Pending:
    __slots__ = ("row", "make", "outcome", "meta", "after")

    def __init__(self) -> None:
        self.row: dict | None = None        # a new row (TaskDB.add), None: the row is stored already
        self.make: Callable[[], dict] | None = None   # a new row made when it is written
        self.outcome: dict = {}             # the outcome of a stored row (TaskDB.finish's fields)
        self.meta: dict = {}                # its peer and type (for on_written)
        self.after: list[Callable[[], None]] = []   # more writes for the same transaction


class Recorder:
    """Queues :class:`TaskDB` writes and commits them together; ``on_written(task, role, row)``
    is called for each task after its commit (``row`` has at least peer, type and state)."""

    def __init__(self, db: TaskDB, store, on_written: Callable[[str, str, dict], None]):
        self.db, self.store, self.on_written = db, store, on_written
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._later: asyncio.TimerHandle | None = None
        self.immediate = False   # after stop: write each row at once

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, *, after: Callable[[], None] | None = None, **row) -> None:
        """Queue a new row (the arguments of :meth:`TaskDB.add`: with an outcome it is final).
        ``after`` runs in the same transaction, after the row is written."""
        entry = self._entry(row["task"], row["role"])
        entry.row = row
        self._queued(entry, after)

    def add_later(self, task: str, role: str, make: Callable[[], dict], *,
                  after: Callable[[], None] | None = None) -> None:
        """:meth:`add` of the row ``make()`` returns, called when the row is written: building it
        (its JSON fields, the request's summary) costs nothing on the answer's path."""
        entry = self._entry(task, role)
        entry.make = make
        self._queued(entry, after)

    def finish(self, task: str, role: str, *, peer: str, type: str, after: Callable[[], None] | None = None,
               **outcome) -> None:
        """Queue the outcome of a row (the arguments of :meth:`TaskDB.finish`), merged into the
        row itself while that is still queued."""
        entry = self._entry(task, role)
        if entry.row is not None:
            entry.row.update(outcome)
        elif entry.make is not None:
            entry.outcome.update(outcome)   # merged into the row when it is made
        else:
            entry.outcome = outcome
            entry.meta = {"peer": peer, "type": type}
        self._queued(entry, after)

    def flush(self) -> None:
        """Write everything queued now, in one transaction; then report each task written.

        A pending timer is left to run (and find little or nothing): a forced flush per task
        (every read does one) costs no timer made and cancelled each time."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            for entry in batch.values():
                if entry.make is not None:
                    entry.row = {**entry.make(), **entry.outcome}
            with self.store.transaction():
                for (task, role), entry in batch.items():
                    if entry.row is not None:
                        self.db.add(**entry.row)
                    else:
                        self.db.finish(task, role, **entry.outcome)
                    for effect in entry.after:
                        effect()
        except CoveyError as exc:   # the store closed or failed: the answers went out regardless
            log.warning("%d task record(s) not written: %s", len(batch), exc)
            return
        for (task, role), entry in batch.items():
            row = entry.row if entry.row is not None else {**entry.meta, **entry.outcome}
            self.on_written(task, role, row)

    def _entry(self, task: str, role: str) -> _Pending:
        entry = self._pending.get((task, role))
        if entry is None:
            entry = self._pending[(task, role)] = _Pending()
        return entry

    def _queued(self, entry: _Pending, after) -> None:
        if after is not None:
            entry.after.append(after)
        if self.immediate or len(self._pending) >= MAX_PENDING:
            self.flush()
        elif self._later is None:
            self._later = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._timer)

    def _timer(self) -> None:
        self._later = None
        self.flush()
