"""The Knowledge tab: the packets this node holds, publishing, details with the signature check, counters.

It renders ``node.service("knowledge")`` and redraws on the node's
``knowledge_packet`` / ``knowledge_rejected`` events and on peer changes
(coalesced: a burst of packets costs one redraw); it never polls. Files are
read and written by the node (the GUI only picks the paths).
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QSplitter, QTableView, QVBoxLayout, QWidget)
from qasync import asyncSlot

from ..actions import run_action, run_action_now
from ..bridge import Refresh
from ..style import named
from .knowledge_forms import DetailsBox, PublishBox
from .knowledge_model import TITLE, CountersTable, PacketFilter, PacketsModel, size_text

log = logging.getLogger("covey.desktop.knowledge")
LIST_LIMIT = 1000
TITLE_WIDTH = 240


class KnowledgePanel(QWidget):
    """Renders the knowledge service and turns clicks into its calls."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, knowledge, parent=None):
        super().__init__(parent)
        self.node = node
        self.knowledge = knowledge

        self.model = PacketsModel(self.peer_name, self)
        self.proxy = PacketFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter = named(QLineEdit(), "Filter packets", "Show only packets whose title, author, tag or kind "
                            "contains this text")
        self.filter.setPlaceholderText("Filter by title, author, tag or kind")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.summary = QLabel()
        self.summary.setObjectName("caption")
        self.table = named(QTableView(), "Packets",
                           "The packets this node holds, newest first; select one for its details")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        # the title is what people read: a width of its own (the other columns took it all when it
        # only stretched into what they left), the last column takes what remains
        header.setSectionResizeMode(TITLE, QHeaderView.Interactive)
        header.resizeSection(TITLE, TITLE_WIDTH)
        header.setStretchLastSection(True)
        self.table.setMinimumHeight(120)
        self.table.selectionModel().selectionChanged.connect(self._selected)

        self.counters = CountersTable()
        counters_box = QGroupBox("Gossip counters")
        QVBoxLayout(counters_box).addWidget(self.counters)

        self.details = DetailsBox()
        self.details.export_requested.connect(self.export)
        self.publish_box = PublishBox()
        self.publish_box.publish_text.connect(self.publish_text)
        self.publish_box.publish_file.connect(self.publish_file)

        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.summary)
        listing = QWidget()
        listing_layout = QVBoxLayout(listing)
        listing_layout.setContentsMargins(0, 0, 0, 0)
        listing_layout.addLayout(top)
        listing_layout.addWidget(self.table, 1)
        beside = self.beside = QSplitter(Qt.Vertical)   # the selected packet above the counters
        beside.addWidget(self.details)
        beside.addWidget(counters_box)
        beside.setStretchFactor(0, 3)
        beside.setStretchFactor(1, 2)
        lower = QSplitter(Qt.Horizontal)       # details and counters | the publish form
        lower.addWidget(beside)
        lower.addWidget(self.publish_box)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setChildrenCollapsible(False)
        self.split = QSplitter(Qt.Vertical)    # the list across the whole tab, the rest below
        self.split.addWidget(listing)
        self.split.addWidget(lower)
        self.split.setChildrenCollapsible(False)
        self._sized = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 4, 0, 0)
        outer.addWidget(self.split)

        self.packets_update = Refresh(self.reload, self)
        self.counters_update = Refresh(self.refresh_counters, self)
        self.reload()

    # -- drawing -------------------------------------------------------------------------
    def peer_name(self, peer_id: str) -> str:
        if peer_id == self.node.identity.id:
            return "this node"
        record = self.node.peers.get(peer_id)
        return (record.name if record is not None and record.name else None) or peer_id[:12]

    def reload(self) -> None:
        """Redraw the packet list (keeping the selection) and the counters."""
        selected = self.selected_id()
        self.model.set_rows(self.knowledge.list(limit=LIST_LIMIT))
        if selected is not None:
            self.select_packet(selected, show=False)
        self.refresh_counters()

    def refresh_counters(self) -> None:
        status = self.knowledge.status()
        self.counters.show_status(status, self.peer_name)
        self.summary.setText(f"{status['packets']} packet{'s' if status['packets'] != 1 else ''} · "
                             f"{size_text(status['bytes'])} · {status['authors']} author"
                             f"{'s' if status['authors'] != 1 else ''}")

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], Qt.UserRole) if rows else None

    def select_packet(self, packet_id: str, show: bool = True) -> bool:
        """Select a packet's row (and show its details); False when it is not listed or filtered out."""
        row = self.model.row_of(packet_id)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectionModel().select(index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        self.table.scrollTo(index)
        if show:
            self.show_details(packet_id)
        return True

    def _selected(self, *_) -> None:
        packet_id = self.selected_id()
        if packet_id is None:
            self.details.clear()
        elif packet_id != self.details.packet_id:
            self.show_details(packet_id)

    def show_details(self, packet_id: str) -> None:
        """Show one packet, its signature checked again from the stored bytes."""
        def shown(view: dict) -> None:
            self.model.set_check(view["id"], bool(view["verified"]), view.get("problem"))
            self.details.show_packet(view, self.peer_name(view["author"]))
        run_action_now(self, lambda: self.knowledge.show(packet_id), failure="Could not show the packet",
                       success=shown)

    # -- events from the node --------------------------------------------------------------
    def on_event_knowledge_packet(self, event) -> None:
        self.packets_update.request()

    def on_event_knowledge_rejected(self, event) -> None:
        self.counters_update.request()

    def on_event_peer_connected(self, event) -> None:
        self.counters_update.request()

    on_event_peer_disconnected = on_event_peer_connected
    on_event_tier_changed = on_event_peer_connected

    def showEvent(self, event) -> None:
        self.refresh_counters()   # duplicates and sends raise no event: fresh whenever the tab is shown
        if not self._sized:       # the list gets two fifths of the height the first time
            self._sized = True
            height = max(self.height(), 400)
            self.split.setSizes([height * 2 // 5, height - height * 2 // 5])
            lower = height - height * 2 // 5
            self.beside.setSizes([lower * 11 // 20, lower - lower * 11 // 20])
        super().showEvent(event)

    # -- actions -----------------------------------------------------------------------------
    def _published(self, view: dict) -> str:
        self.publish_box.published()
        self.reload()
        self.select_packet(view["id"])
        peers = len(view.get("pushed_to") or [])
        return (f"Published “{view['title'] or view.get('filename') or view['id'][:12]}” "
                f"(#{view['seq']}), sent to {peers} CORE peer{'s' if peers != 1 else ''}")

    @asyncSlot(dict)
    async def publish_text(self, fields: dict) -> None:
        await run_action(self, self.knowledge.publish(**fields), failure="Could not publish",
                         busy=self.publish_box.set_busy, on_error=self.publish_box.show_refusal,
                         success=self._published)

    @asyncSlot(dict)
    async def publish_file(self, fields: dict) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Publish a file (at most 16 MiB)")
        if not path:
            return
        await run_action(self, self.knowledge.publish(path=path, **fields), failure="Could not publish the file",
                         busy=self.publish_box.set_busy, on_error=self.publish_box.show_refusal,
                         success=self._published)

    @asyncSlot(str)
    async def export(self, packet_id: str) -> None:
        row = self.model.rows[self.model.row_of(packet_id)] if self.model.row_of(packet_id) >= 0 else {}
        suggested = row.get("filename") or f"{(row.get('title') or packet_id[:12])}.txt"
        path, _ = QFileDialog.getSaveFileName(self, "Export the packet's content", suggested)
        if not path:
            return
        await run_action(self, self.knowledge.export(packet_id, path), failure="Could not export",
                         busy=self.details.export_button,
                         success=lambda out: f"Saved {size_text(out['size'])} to {out['path']}")
