"""One conversation's messages as a list model (the service's ``read`` views, parsed once).

Rows are text messages (``kind="text"``) and file transfers (``kind="file"``).
They are kept in ``key`` order: a message's key is ``(id, 0)``; a file row is
placed after the last message shown when the offer appeared, ``(that id, n)``,
so both kinds interleave in the order the person saw them.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

MAX_ROWS = 10_000          # rows one view holds; the oldest leave first
ROW_ROLE = Qt.UserRole + 1  # the Row of an index

# What the ticks of an outgoing message look like, by state: (marks, what they say)
TICKS = {"queued": ("…", "waiting to be sent"), "sent": ("✓", "sent"), "delivered": ("✓✓", "delivered"),
         "read": ("✓✓", "read"), "failed": ("✗", "not delivered")}


@dataclass
class Row:
    """One message as the view draws it (memory only, like the service's copy)."""
    id: int
    author: str
    text: str
    sent_at: float
    state: str
    outgoing: bool
    expires_at: float | None
    kind: str = "text"           # or "file": ``file`` holds the transfer's view (core.chat.files)
    sub: int = 0                 # 0 for messages; a file row's place after message ``id``
    file: dict | None = None
    note: str = ""               # a file row's extra line ("resumed after the connection was cut")

    @property
    def key(self) -> tuple[int, int]:
        return (self.id, self.sub)

    @classmethod
    def for_file(cls, after: int, sub: int, view: dict) -> "Row":
        return cls(after, str(view["peer"]), str(view["name"]), time.time(), str(view["state"]),
                   view["direction"] == "out", None, kind="file", sub=sub, file=dict(view))

    @classmethod
    def from_view(cls, view: dict) -> "Row":
        expires = view.get("expires_at")
        return cls(int(view["id"]), str(view["from"]), str(view["text"]), _epoch(view["sent_at"]),
                   str(view["state"]), bool(view["outgoing"]), _epoch(expires) if expires else None)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def clock(ts: float, now: float | None = None) -> str:
    """'14:03' today, 'Mar 2, 14:03' on another day (local time)."""
    when = datetime.fromtimestamp(ts)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    return f"{when:%H:%M}" if when.date() == today else f"{when:%b} {when.day}, {when:%H:%M}"


def countdown(expires_at: float, now: float | None = None) -> str:
    """How long until a message disappears: '0:29', '4:59', '59 min', '23 h 59 min'."""
    left = max(0, int(expires_at - (time.time() if now is None else now)))
    if left < 600:
        return f"{left // 60}:{left % 60:02d}"
    if left < 3600:
        return f"{left // 60} min"
    return f"{left // 3600} h {left % 3600 // 60} min"


def ticks(state: str, read_receipts: bool) -> tuple[str, str]:
    """The marks and words of an outgoing message's state; with read receipts off, read looks delivered."""
    if state == "read" and not read_receipts:
        state = "delivered"
    return TICKS.get(state, ("", state))


class MessagesModel(QAbstractListModel):
    """The open conversation's rows, in id order; changed a row at a time."""

    def __init__(self, name_of, parent=None, max_rows: int = MAX_ROWS):
        super().__init__(parent)
        self.name_of = name_of        # peer id -> the name to show
        self.max_rows = max_rows
        self.rows: list[Row] = []
        self.read_receipts = True

    # -- data in -----------------------------------------------------------------------
    def set_views(self, views: list[dict]) -> None:
        self.beginResetModel()
        self.rows = [Row.from_view(v) for v in views][-self.max_rows:]
        self.endResetModel()

    def clear(self) -> None:
        self.set_views([])

    def append(self, views: list[dict]) -> int:
        """Add messages newer than the last row (older or known ids are skipped); returns how many."""
        fresh = [Row.from_view(v) for v in views if int(v["id"]) > self.last_id]
        self._extend(fresh)
        return len(fresh)

    def _extend(self, fresh: list[Row]) -> None:
        if not fresh:
            return
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        self.rows.extend(fresh)
        self.endInsertRows()
        extra = len(self.rows) - self.max_rows
        if extra > 0:
            self.beginRemoveRows(QModelIndex(), 0, extra - 1)
            del self.rows[:extra]
            self.endRemoveRows()

    # -- file rows ---------------------------------------------------------------------
    def add_file(self, view: dict, after: int | None = None) -> Row:
        """Add a file row at the end (after message ``after``, default the last shown)."""
        after = self.last_id if after is None else after
        last = self.rows[-1].key if self.rows else (0, 0)
        sub = last[1] + 1 if last[0] == after else 1
        row = Row.for_file(after, sub, view)
        self._extend([row])
        return row

    def file_row(self, file_id: str) -> int:
        return next((i for i in range(len(self.rows) - 1, -1, -1)
                     if self.rows[i].kind == "file" and self.rows[i].file["id"] == file_id), -1)

    def update_file(self, view: dict, note: str | None = None) -> bool:
        """A transfer moved on (state, bytes done): redraw its row; False if it is not shown."""
        row = self.file_row(str(view["id"]))
        if row < 0:
            return False
        target = self.rows[row]
        assert target.file is not None
        target.file.update(view)
        target.state = str(view["state"])
        if note is not None:
            target.note = note
        index = self.index(row)
        self.dataChanged.emit(index, index)
        return True

    def set_rows(self, rows: list[Row]) -> None:
        """Replace every row (already parsed, in key order)."""
        self.beginResetModel()
        self.rows = rows[-self.max_rows:]
        self.endResetModel()

    def set_state(self, msg_id: int, state: str) -> bool:
        row = self.row_of(msg_id)
        if row < 0:
            return False
        self.rows[row].state = state
        index = self.index(row)
        self.dataChanged.emit(index, index)
        return True

    def remove_ids(self, ids) -> int:
        """Drop the rows of these message ids (their timer ran out); returns how many."""
        gone = 0
        for msg_id in sorted({int(i) for i in ids}, reverse=True):
            row = self.row_of(msg_id)
            if row >= 0:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.rows[row]
                self.endRemoveRows()
                gone += 1
        return gone

    def mark_read(self) -> None:
        """Incoming rows become read (the service marked them: the person saw them)."""
        for row in self.rows:
            if not row.outgoing and row.state == "received":
                row.state = "read"

    def set_read_receipts(self, on: bool) -> None:
        self.read_receipts = on
        if self.rows:
            self.dataChanged.emit(self.index(0), self.index(len(self.rows) - 1))

    # -- looking up --------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        return self.rows[-1].id if self.rows else 0

    def row_of(self, msg_id: int) -> int:
        """Row of a message id, or -1 (keys only grow: a binary search)."""
        row = bisect.bisect_left(self.rows, (msg_id, 0), key=lambda r: r.key)
        return row if row < len(self.rows) and self.rows[row].key == (msg_id, 0) else -1

    def texts(self) -> list[str]:
        return [r.text for r in self.rows if r.kind == "text"]

    def expiring(self) -> bool:
        return any(r.expires_at is not None for r in self.rows)

    def sender(self, row: Row) -> str:
        return "You" if row.outgoing else self.name_of(row.author)

    def spoken(self, row: Row) -> str:
        """The whole row in words (what a screen reader says, and the tooltip)."""
        if row.kind == "file":
            return file_words(row)
        parts = [f"{self.sender(row)}, {clock(row.sent_at)}: {row.text}"]
        if row.outgoing:
            parts.append(f"({ticks(row.state, self.read_receipts)[1]})")
        if row.expires_at is not None:
            parts.append(f"— disappears in {countdown(row.expires_at)}")
        return " ".join(parts)

    # -- Qt model API ----------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == ROW_ROLE:
            return row
        if role in (Qt.DisplayRole, Qt.AccessibleTextRole, Qt.ToolTipRole):
            return self.spoken(row)
        return None


def size_text(size: int) -> str:
    """1536 -> '1.5 KB' (decimal units, as file managers show them)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "bytes":
                return "1 byte" if size == 1 else f"{size} bytes"
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


FILE_STATES = {"offered": "waiting to be accepted", "transferring": "transferring", "saving": "saving",
               "done": "done", "cancelled": "cancelled", "failed": "failed"}


def file_state_text(view: dict) -> str:
    """What a transfer is doing, in words (with the reason when it ended early)."""
    state, out = str(view.get("state")), view.get("direction") == "out"
    if state == "offered":
        words = "waiting for them to accept" if out else "offered to you"
    elif state == "transferring":
        total = int(view.get("total") or 0)
        words = f"{'sending' if out else 'receiving'} · {percent(view)}% of {size_text(total)}"
    elif state == "done":
        words = "sent" if out else f"saved to {view.get('path')}"
    else:
        words = FILE_STATES.get(state, state)
    if state in ("cancelled", "failed") and view.get("error"):
        words += f": {view['error']}"
    if view.get("who"):            # a group's file: one transfer per member
        words = f"{'to' if out else 'from'} {view['who']} · {words}"
    return words


def percent(view: dict) -> int:
    """How far a transfer got, 0-100 (100 once done)."""
    total = int(view.get("total") or 0)
    if view.get("state") == "done":
        return 100
    return min(100, int(view.get("done") or 0) * 100 // total) if total else 0


def file_words(row: Row) -> str:
    view = row.file or {}
    who = "You offered" if row.outgoing else "Offered to you:"
    words = f"{who} {view.get('name')} ({size_text(int(view.get('size') or 0))}), {file_state_text(view)}"
    return f"{words}; {row.note}" if row.note else words
