"""Table model of the Trust tab, rendered from ``node.list_peers()`` dicts.

Built for a thousand rows: each row's texts, colours and search text are worked
out once when the row changes (never while painting), rows are found through an
id -> row map, and changes insert, move or repaint one row instead of resetting.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from ..style import mono_font

COLUMNS = ("Name", "ID", "Tier", "Verified", "Connected", "Mode", "Route", "Reputation", "Last seen")
NAME, ID, TIER, VERIFIED, CONNECTED, MODE, ROUTE, REPUTATION, LAST_SEEN = range(len(COLUMNS))
PEER_ROLE = Qt.UserRole + 1          # the whole peer dict of a row
SEARCH_ROLE = Qt.UserRole + 2        # lower-case text the filter field matches
# data() runs for every role of every visible cell on each paint: plain ints, looked up
# once (reading ``Qt.DisplayRole`` costs microseconds each time)
_DISPLAY, _FOREGROUND, _FONT, _EDIT, _TOOLTIP, _ACCESSIBLE = (int(r) for r in (
    Qt.DisplayRole, Qt.ForegroundRole, Qt.FontRole, Qt.EditRole, Qt.ToolTipRole, Qt.AccessibleTextRole))
_PEER, _SEARCH = int(PEER_ROLE), int(SEARCH_ROLE)
_PLAIN = Qt.ItemIsSelectable | Qt.ItemIsEnabled
_EDITABLE = _PLAIN | Qt.ItemIsEditable
HEADER_TIPS = (
    "The name the peer announced or you gave it",
    "The start of the peer's ID (its public key); the full ID is in the details",
    "What the peer may do here; double-click (or F2) to change it",
    "Whether you compared the safety number with this peer (Chat tab) and marked it verified",
    "Whether a connection to the peer is open now",
    "The encryption of the open connection (none while disconnected)",
    "How the open connection travels: direct, SOCKS5 or Tor when we dialled, inbound when the peer did",
    "0 to 1; rejected contributions lower it, at 0.2 the peer is banned",
    "When the peer was last connected",
)

DANGER = QColor("#c62828")
GOOD = QColor("#2e7d32")
MUTED = QColor("#78808a")


def relative_time(iso: str | None, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago' or 'never'."""
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


def mode_text(peer: dict) -> str:
    """A mode describes an open connection: a disconnected (or banned) peer has none."""
    return peer["mode"] if peer["connected"] and peer.get("mode") else "—"


def route_text(peer: dict) -> str:
    """direct / SOCKS5 / Tor (we dialled) or inbound, for an open connection only."""
    route = peer.get("route")
    return route if peer["connected"] and isinstance(route, str) and route else "—"


@dataclass
class Row:
    """One peer and everything the view asks about it, computed once."""
    peer: dict
    key: tuple
    texts: tuple
    colors: tuple
    search: str


class PeersModel(QAbstractTableModel):
    """One row per peer, kept in :func:`_order`; filled once, then changed a row at a time.

    Row changes move rows rather than reset the model, so the selection stays on its peer.
    ``verified_of(peer_id)`` says whether chat marked the peer verified (None: chat is off).
    """

    def __init__(self, parent=None, verified_of: Callable[[str], bool | None] | None = None):
        super().__init__(parent)
        self._rows: list[Row] = []
        self._keys: list[tuple] = []
        self._index: dict[str, int] = {}
        self.mono_font = mono_font()
        self._verified_of = verified_of or (lambda peer_id: None)
        self._brushes = {c.name(): QBrush(c) for c in (DANGER, GOOD, MUTED)}

    # -- data in ---------------------------------------------------------------
    def set_peers(self, peers: list[dict]) -> None:
        self.beginResetModel()
        self._rows = sorted((self._row(p) for p in peers), key=lambda r: r.key)
        self._reindex()
        self.endResetModel()

    def put(self, peer: dict) -> None:
        """Insert the peer, or replace its row; the row moves to where the order puts it."""
        new = self._row(peer)
        row = self.row_of(peer["id"])
        if row >= 0:
            del self._keys[row]
        target = bisect.bisect_left(self._keys, new.key)
        if row < 0:
            self.beginInsertRows(QModelIndex(), target, target)
            self._rows.insert(target, new)
            self._keys.insert(target, new.key)
            self._reindex(target)
            self.endInsertRows()
            return
        if target != row:
            # Qt counts the destination in the list before the move: one more when moving down
            self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), target + 1 if target > row else target)
            del self._rows[row]
            self._rows.insert(target, new)
            self._keys.insert(target, new.key)
            self._reindex(min(row, target))
            self.endMoveRows()
        else:
            self._rows[row] = new
            self._keys.insert(row, new.key)
        self.dataChanged.emit(self.index(target, 0), self.index(target, len(COLUMNS) - 1))

    def update(self, peer_id: str, **changes) -> bool:
        """Change some fields of one peer's row; False when the peer has no row."""
        row = self.row_of(peer_id)
        if row < 0:
            return False
        self.put({**self._rows[row].peer, **changes})
        return True

    def refresh_verified(self, peer_ids) -> None:
        """Re-ask ``verified_of`` for these peers (after chat marked one)."""
        for peer_id in peer_ids:
            row = self.row_of(peer_id)
            if row >= 0:
                self.put(self._rows[row].peer)

    def refresh_times(self) -> None:
        """Recompute the 'Last seen' texts (they age) and repaint that column only."""
        now = datetime.now(timezone.utc)
        for row in self._rows:
            texts = list(row.texts)
            texts[LAST_SEEN] = _last_seen(row.peer, now)
            row.texts = tuple(texts)
        if self._rows:
            self.dataChanged.emit(self.index(0, LAST_SEEN), self.index(len(self._rows) - 1, LAST_SEEN),
                                  [Qt.DisplayRole])

    def remove(self, peer_id: str) -> bool:
        """Drop the peer's row; False when it had none."""
        row = self.row_of(peer_id)
        if row < 0:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        del self._keys[row]
        del self._index[peer_id]
        self._reindex(row)
        self.endRemoveRows()
        return True

    def peer(self, row: int) -> dict:
        return self._rows[row].peer

    def row_of(self, peer_id: str) -> int:
        """Row of the peer with this id, or -1."""
        return self._index.get(peer_id, -1)

    def connected_count(self) -> int:
        return sum(1 for r in self._rows if r.peer["connected"])

    def _reindex(self, start: int = 0) -> None:
        if start == 0:
            self._keys = [r.key for r in self._rows]
            self._index = {}
        for row in range(start, len(self._rows)):
            self._index[self._rows[row].peer["id"]] = row

    def _row(self, peer: dict) -> Row:
        verified = self._verified_of(peer["id"])
        peer = {**peer, "verified": verified}   # the details panel shows it too
        texts = (
            peer["name"] or "(unnamed)",
            peer["id"][:12],
            "banned" if peer["banned"] else peer["tier"],
            "—" if verified is None else ("✓ yes" if verified else "no"),
            "yes" if peer["connected"] else "no",
            mode_text(peer),
            route_text(peer),
            f"{peer['reputation']:.2f}",
            _last_seen(peer, None),
        )
        colors = [None] * len(COLUMNS)
        if not peer["connected"]:
            for col in (NAME, ID, LAST_SEEN, CONNECTED):
                colors[col] = self._brushes[MUTED.name()]
        else:
            colors[CONNECTED] = self._brushes[GOOD.name()]
        if peer["banned"]:
            colors[TIER] = self._brushes[DANGER.name()]
        if texts[MODE] == "none":
            colors[MODE] = self._brushes[DANGER.name()]
        if verified:
            colors[VERIFIED] = self._brushes[GOOD.name()]
        search = " ".join((texts[NAME], peer["id"], texts[TIER], peer.get("address") or "")).lower()
        return Row(peer, _order(peer), texts, tuple(colors), search)

    # -- Qt model API ------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal:
            if role == Qt.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ToolTipRole:
                return HEADER_TIPS[section]
        return None

    def flags(self, index: QModelIndex):
        return _EDITABLE if index.column() == TIER else _PLAIN

    def data(self, index: QModelIndex, role=_DISPLAY):
        if role == _DISPLAY:
            return self._rows[index.row()].texts[index.column()]
        if role == _FOREGROUND:
            return self._rows[index.row()].colors[index.column()]
        if role == _FONT:
            return self.mono_font if index.column() == ID else None
        if role == _EDIT:
            row = self._rows[index.row()]
            return row.peer["tier"] if index.column() == TIER else row.texts[index.column()]
        if role == _PEER:
            return self._rows[index.row()].peer
        if role == _SEARCH:
            return self._rows[index.row()].search
        if role == _TOOLTIP:
            return _tooltip(self._rows[index.row()].peer, index.column())
        if role == _ACCESSIBLE:
            return f"{COLUMNS[index.column()]}: {self._rows[index.row()].texts[index.column()]}"
        return None


def _last_seen(peer: dict, now: datetime | None) -> str:
    return "now" if peer["connected"] else relative_time(peer["last_seen"], now)


def _tooltip(peer: dict, col: int) -> str:
    lines = [f"id: {peer['id']}", f"fingerprint: {peer.get('fingerprint', '')}",
             f"address: {peer['address'] or 'unknown'}"]
    if peer["banned"]:
        lines.append(f"banned (tier {peer['tier']} is kept for when the ban is lifted)")
    if col == TIER:
        lines.append("double-click to change the tier")
    if col == MODE and peer["connected"] and peer.get("mode") == "none":
        lines.append("this connection is NOT encrypted")
    if col == MODE and not peer["connected"] and peer.get("mode"):
        lines.append(f"last connection: {peer['mode']}")
    return "\n".join(lines)
