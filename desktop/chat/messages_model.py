"""One conversation's messages as a list model (the service's ``read`` views, parsed once)."""
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
    kind: str = "text"     # later: "file" rows with a progress bar

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
        if not fresh:
            return 0
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        self.rows.extend(fresh)
        self.endInsertRows()
        extra = len(self.rows) - self.max_rows
        if extra > 0:
            self.beginRemoveRows(QModelIndex(), 0, extra - 1)
            del self.rows[:extra]
            self.endRemoveRows()
        return len(fresh)

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
        for msg_id in sorted(set(ids), reverse=True):
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
        """Row of a message id, or -1 (ids only grow: a binary search)."""
        row = bisect.bisect_left(self.rows, msg_id, key=lambda r: r.id)
        return row if row < len(self.rows) and self.rows[row].id == msg_id else -1

    def expiring(self) -> bool:
        return any(r.expires_at is not None for r in self.rows)

    def sender(self, row: Row) -> str:
        return "You" if row.outgoing else self.name_of(row.author)

    def spoken(self, row: Row) -> str:
        """The whole row in words (what a screen reader says, and the tooltip)."""
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
