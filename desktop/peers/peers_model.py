"""Table model of the peer book, rendered from ``node.list_peers()`` dicts."""
from __future__ import annotations

import bisect
from datetime import datetime, timezone

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from ..style import mono_font

COLUMNS = ("Name", "ID", "Tier", "Connected", "Mode", "Reputation", "Last seen")
NAME, ID, TIER, CONNECTED, MODE, REPUTATION, LAST_SEEN = range(len(COLUMNS))
PEER_ROLE = Qt.UserRole + 1          # the whole peer dict of a row

DANGER = QColor("#c62828")
GOOD = QColor("#2e7d32")
MUTED = QColor("#78808a")


def relative_time(iso: str | None, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago' or '—' for never."""
    if not iso:
        return "never"
    then = datetime.fromisoformat(iso)
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def _order(peer: dict) -> tuple:
    """Connected peers first, then by name, then by id."""
    return (not peer["connected"], (peer["name"] or "~").lower(), peer["id"])


class PeersModel(QAbstractTableModel):
    """One row per peer, kept in :func:`_order`; filled once, then changed a row at a time.

    Row changes move rows rather than reset the model, so the selection stays on its peer.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._peers: list[dict] = []
        self._mono = mono_font()

    # -- data in ---------------------------------------------------------------
    def set_peers(self, peers: list[dict]) -> None:
        self.beginResetModel()
        self._peers = sorted(peers, key=_order)
        self.endResetModel()

    def put(self, peer: dict) -> None:
        """Insert the peer, or replace its row; the row moves to where the order puts it."""
        row = self.row_of(peer["id"])
        others = self._peers if row < 0 else self._peers[:row] + self._peers[row + 1:]
        target = bisect.bisect_left([_order(p) for p in others], _order(peer))
        if row < 0:
            self.beginInsertRows(QModelIndex(), target, target)
            self._peers.insert(target, peer)
            self.endInsertRows()
            return
        if target != row:
            # Qt counts the destination in the list before the move: one more when moving down
            self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), target + 1 if target > row else target)
            del self._peers[row]
            self._peers.insert(target, peer)
            self.endMoveRows()
        else:
            self._peers[row] = peer
        self.dataChanged.emit(self.index(target, 0), self.index(target, len(COLUMNS) - 1))

    def update(self, peer_id: str, **changes) -> bool:
        """Change some fields of one peer's row; False when the peer has no row."""
        row = self.row_of(peer_id)
        if row < 0:
            return False
        self.put({**self._peers[row], **changes})
        return True

    def remove(self, peer_id: str) -> bool:
        """Drop the peer's row; False when it had none."""
        row = self.row_of(peer_id)
        if row < 0:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._peers[row]
        self.endRemoveRows()
        return True

    def peer(self, row: int) -> dict:
        return self._peers[row]

    def row_of(self, peer_id: str) -> int:
        """Row of the peer with this id, or -1."""
        for row, peer in enumerate(self._peers):
            if peer["id"] == peer_id:
                return row
        return -1

    def connected_count(self) -> int:
        return sum(1 for p in self._peers if p["connected"])

    # -- Qt model API ------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._peers)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        peer, col = self._peers[index.row()], index.column()
        if role == Qt.DisplayRole:
            return self._text(peer, col)
        if role == PEER_ROLE:
            return peer
        if role == Qt.ToolTipRole:
            return self._tooltip(peer, col)
        if role == Qt.ForegroundRole:
            return self._color(peer, col)
        if role == Qt.FontRole and col == ID:
            return self._mono
        return None

    @staticmethod
    def _text(peer: dict, col: int) -> str:
        if col == NAME:
            return peer["name"] or "(unnamed)"
        if col == ID:
            return peer["id"][:12]
        if col == TIER:
            return "banned" if peer["banned"] else peer["tier"]
        if col == CONNECTED:
            return "yes" if peer["connected"] else "no"
        if col == MODE:
            return peer["mode"] or "—"
        if col == REPUTATION:
            return f"{peer['reputation']:.2f}"
        if col == LAST_SEEN:
            return "now" if peer["connected"] else relative_time(peer["last_seen"])
        return ""

    @staticmethod
    def _tooltip(peer: dict, col: int) -> str:
        lines = [f"id: {peer['id']}", f"fingerprint: {peer.get('fingerprint', '')}",
                 f"address: {peer['address'] or 'unknown'}"]
        if peer["banned"]:
            lines.append(f"banned (tier {peer['tier']} is kept for when the ban is lifted)")
        if col == MODE and peer["mode"] == "none":
            lines.append("this connection is NOT encrypted")
        return "\n".join(lines)

    @staticmethod
    def _color(peer: dict, col: int):
        if col == TIER and peer["banned"]:
            return QBrush(DANGER)
        if col == MODE and peer["mode"] == "none":
            return QBrush(DANGER)
        if col == CONNECTED:
            return QBrush(GOOD if peer["connected"] else MUTED)
        if not peer["connected"] and col in (NAME, ID, LAST_SEEN):
            return QBrush(MUTED)
        return None
