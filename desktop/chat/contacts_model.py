"""The contacts list: who this node may chat with, and every open conversation.

A row is a dict: ``kind`` ("peer" or "group"), ``id`` (peer or group id),
``name``, ``tier``, ``connected``, ``verified``, ``unread``, ``last_at``,
``typing``, ``messages``; a group's also ``members`` (how many) and
``departed`` (why it is read-only here: "", "left", "removed", "closed"). Open conversations come first (newest first), then
connected contacts, then the rest by name.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPixmap

CONTACT_ROLE = Qt.UserRole + 1      # the row dict
ONLINE, OFFLINE, MUTED, GROUP = QColor("#2e7d32"), QColor("#a4aab4"), QColor("#6b7383"), QColor("#1f5fbf")
DEPARTED = {"left": "you left", "removed": "you were removed", "closed": "closed by its creator"}


def members_text(count: int) -> str:
    return f"{count} member{'s' if count != 1 else ''}"


def label(row: dict) -> str:
    return row["name"] or row["id"][:12]


def _order(row: dict) -> tuple:
    return (not row["messages"], _neg_iso(row["last_at"]), not row["connected"], label(row).lower(), row["id"])


def _neg_iso(iso: str | None) -> tuple:
    """Sorts newer ISO times first (they compare as text; invert each character)."""
    return tuple(-ord(c) for c in iso) if iso else ()


def _dot(color: QColor) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setBrush(color)
    painter.setPen(Qt.NoPen)
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)


class ContactsModel(QAbstractListModel):
    """See the module docstring."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self._icons = {True: _dot(ONLINE), False: _dot(OFFLINE), "group": _dot(GROUP)}

    def set_rows(self, rows: list[dict]) -> None:
        """Replace the rows (a coalesced redraw: the view keeps its selection by id, see the panel)."""
        self.beginResetModel()
        self.rows = sorted(rows, key=_order)
        self.endResetModel()

    def set_connected(self, key: str, connected: bool) -> bool:
        """A contact connected or went away: redraw its row only; False if it has no row."""
        row = self.row_of(key)
        if row < 0:
            return False
        if self.rows[row]["connected"] != connected:
            self.rows[row]["connected"] = connected
            index = self.index(row)
            self.dataChanged.emit(index, index)
        return True

    def row_of(self, key: str) -> int:
        return next((i for i, r in enumerate(self.rows) if r["id"] == key), -1)

    def get(self, key: str) -> dict | None:
        row = self.row_of(key)
        return self.rows[row] if row >= 0 else None

    @staticmethod
    def text(row: dict) -> str:
        """Two lines: the name with its badges and unread count, then the state."""
        first = label(row) + ("  ✓ verified" if row["verified"] else "")
        if row["unread"]:
            first += f"  ({row['unread']} new)"
        if row["kind"] == "group":
            departed = DEPARTED.get(row.get("departed") or "", "")
            return f"{first}\ngroup · " + (departed or row.get("note") or members_text(row.get("members", 0)))
        second = "typing…" if row["typing"] else ("online" if row["connected"] else "offline")
        return f"{first}\n{second} · {row['tier']}"

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        if role in (Qt.DisplayRole, Qt.AccessibleTextRole):
            return self.text(row)
        if role == CONTACT_ROLE:
            return row
        if role == Qt.DecorationRole:
            return self._icons["group" if row["kind"] == "group" else bool(row["connected"])]
        if role == Qt.ToolTipRole and row["kind"] == "group":
            return f"{label(row)}: a group\n{self.text(row).split(chr(10))[1]}"
        if role == Qt.ToolTipRole:
            state = "connected" if row["connected"] else "not connected: messages wait in memory until it is"
            verified = ("safety number verified" if row["verified"]
                        else "not verified: compare the safety number in person")
            return f"{label(row)} ({row['tier']})\nid: {row['id']}\n{state}\n{verified}"
        if role == Qt.FontRole and row["unread"]:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ForegroundRole and not row["connected"]:
            return QBrush(MUTED)
        return None


class ContactsFilter(QSortFilterProxyModel):
    """Keeps the rows whose name or id contains the filter text (any case)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.needle = ""

    def set_text(self, text: str) -> None:
        self.needle = text.strip().lower()
        self.setFilterFixedString(self.needle)   # re-runs filterAcceptsRow

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if not self.needle:
            return True
        row = self.sourceModel().rows[source_row]
        return self.needle in label(row).lower() or row["id"].startswith(self.needle)
