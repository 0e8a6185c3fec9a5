"""The live sessions: each connected peer with its encryption mode, its route and since when."""
from __future__ import annotations

import time

from PySide6.QtWidgets import QAbstractItemView, QGroupBox, QHeaderView, QLabel, QTableWidget, QVBoxLayout

from ..bridge import Refresh
from ..style import BAD, MUTED, named, plain_tip, table_item

COLUMNS = ("Peer", "Mode", "Route", "Since")
PEER, MODE, ROUTE, SINCE = range(len(COLUMNS))
ROUTE_TIPS = {"direct": "this node dialled it directly", "SOCKS5": "this node dialled it through the SOCKS5 proxy",
              "Tor": "this node dialled it through Tor", "inbound": "the peer connected to this node"}


class SessionsBox(QGroupBox):
    """A table of ``node.sessions()``, redrawn once per burst of connection events."""

    def __init__(self, node, parent=None):
        super().__init__("Live sessions", parent)
        self.node = node
        self.table = named(QTableWidget(0, len(COLUMNS)), "Live sessions",
                           "Every connected peer, the encryption its session uses, how it was made and since when.")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSortingEnabled(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(PEER, QHeaderView.Stretch)
        for column in (MODE, ROUTE, SINCE):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(140)
        self.empty = named(QLabel("No peer is connected."), "No sessions", "Sessions appear here as peers connect.")
        self.empty.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        self.redraw = Refresh(self.refresh, self)
        self.refresh()

    def refresh(self) -> None:
        sessions = sorted(self.node.sessions(), key=lambda s: (s["name"] or s["peer"]).lower())
        self.table.setRowCount(len(sessions))
        for row, s in enumerate(sessions):
            name = s["name"] or s["peer"][:12]
            self.table.setItem(row, PEER, table_item(name, tip=plain_tip(f"{name}\n{s['peer']}")))
            plain = s["mode"] == "none"
            self.table.setItem(row, MODE, table_item(s["mode"], BAD if plain else None,
                                                     "NOT encrypted: readable on the network path" if plain else ""))
            self.table.setItem(row, ROUTE, table_item(s["route"], tip=ROUTE_TIPS.get(s["route"], "")))
            self.table.setItem(row, SINCE, table_item(time.strftime("%H:%M:%S", time.localtime(s["since"])), MUTED,
                                                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["since"]))))
        self.empty.setVisible(not sessions)

    def rows(self) -> list[tuple[str, str, str]]:
        """(peer, mode, route) as shown, top to bottom."""
        return [tuple(self.table.item(r, c).text() for c in (PEER, MODE, ROUTE))   # type: ignore[misc]
                for r in range(self.table.rowCount())]
