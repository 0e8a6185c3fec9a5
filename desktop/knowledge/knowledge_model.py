"""The packet list (a table model with a text filter) and the counters table of the Knowledge tab."""
from __future__ import annotations

import time

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

TITLE, AUTHOR, TIER, VERIFIED, TAGS, KIND, SIZE, CREATED = range(8)
HEADERS = ("Title", "Author", "Tier", "Signature", "Tags", "Kind", "Size", "Created")
TIER_TEXT = {"self": "this node", "core": "core", "sandbox": "sandbox (not relayed)"}
SIGNED = "✓ verified"          # checked when stored (nothing unverified is ever stored)
RECHECKED = "✓ re-checked"     # checked again from the stored bytes when shown
FAILED = "✗ failed"


def size_text(n: int) -> str:
    """'512 B', '3.4 KiB', '16.0 MiB'."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def when_text(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


class PacketsModel(QAbstractTableModel):
    """Rows of ``knowledge.list()``; ``author_name(id)`` names authors, ``checks`` holds re-check results."""

    def __init__(self, author_name, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.author_name = author_name
        self.checks: dict[str, tuple[bool, str | None]] = {}   # packet id -> (valid, problem)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return HEADERS[section]
        return None

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def set_check(self, packet_id: str, valid: bool, problem: str | None) -> None:
        self.checks[packet_id] = (valid, problem)
        row = self.row_of(packet_id)
        if row >= 0:
            index = self.index(row, VERIFIED)
            self.dataChanged.emit(index, index)

    def row_of(self, packet_id: str) -> int:
        return next((i for i, r in enumerate(self.rows) if r["id"] == packet_id), -1)

    def signature_text(self, row: dict) -> str:
        check = self.checks.get(row["id"])
        if check is None:
            return SIGNED
        return RECHECKED if check[0] else FAILED

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], index.column()
        if role == Qt.DisplayRole:
            if column == TITLE:
                return row["title"] or row.get("filename") or "(untitled)"
            if column == AUTHOR:
                return self.author_name(row["author"])
            if column == TIER:
                return TIER_TEXT.get(row["tier"], row["tier"])
            if column == VERIFIED:
                return self.signature_text(row)
            if column == TAGS:
                return ", ".join(row["tags"])
            if column == KIND:
                return row["kind"]
            if column == SIZE:
                return size_text(row["size"])
            if column == CREATED:
                return when_text(row["created"])
        if role == Qt.ToolTipRole and column == VERIFIED:
            check = self.checks.get(row["id"])
            if check is not None and not check[0]:
                return check[1]
            return "The author's Ed25519 signature was checked when this packet was stored"
        if role == Qt.ToolTipRole and column == AUTHOR:
            return row["author"]
        if role == Qt.UserRole:
            return row["id"]
        return None


class PacketFilter(QSortFilterProxyModel):
    """Case-insensitive text filter over title, author, tier, tags and kind."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.setFilterKeyColumn(-1)


class CountersTable(QTableWidget):
    """Sent / received / accepted / duplicates / rejected per peer, the total last."""

    COLUMNS = ("Peer", "Sent", "Received", "Accepted", "Duplicates", "Rejected")

    def __init__(self, parent=None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Interactive)   # the peer keeps a width of its own
        header.resizeSection(0, 140)
        header.setStretchLastSection(True)
        self.setMinimumHeight(90)
        self.setAccessibleName("Gossip counters")
        self.setToolTip("Packets sent to and received from each peer, how many were accepted, already held "
                        "or rejected (hover a rejected count for the reasons)")

    def show_status(self, status: dict, peer_name) -> None:
        rows = [(peer_name(p["id"]), p) for p in status["peers"]]
        rows.append(("Total", status["counters"]["total"]))
        self.setRowCount(len(rows))
        for r, (name, counts) in enumerate(rows):
            rejected = counts.get("rejected") or {}
            cells = (name, counts["sent"], counts["received"], counts["accepted"], counts["duplicates"],
                     sum(rejected.values()))
            for c, value in enumerate(cells):
                item = QTableWidgetItem(str(value))
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 5 and rejected:
                    item.setToolTip("\n".join(f"{reason}: {n}" for reason, n in sorted(rejected.items())))
                if name == "Total":
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""
