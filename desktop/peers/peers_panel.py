"""The peers table and its actions: add, set tier, ban / unban, remove."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMenu,
                               QMessageBox, QPushButton, QTableView, QToolButton, QVBoxLayout,
                               QWidget)
from qasync import asyncSlot

from core.errors import BadRequest, KeyMismatch, UnknownPeer

from ..actions import confirm, run_action, run_action_now
from .peer_details import PeerDetails
from .peer_dialogs import AddPeerDialog
from .peers_model import COLUMNS, NAME, PeersModel

TIERS = ("core", "sandbox", "external", "unknown")
TIER_HELP = {
    "core": "full trust: knowledge propagation, tasks, relay",
    "sandbox": "may share knowledge and train, with stricter checks",
    "external": "may chat and query, nothing more",
    "unknown": "contact requests only (the default for new peers)",
}


class PeersPanel(QWidget):
    """Renders ``node.list_peers()`` once, then follows the peer events row by row; clicks become node calls."""

    status = Signal(str)          # something worth telling the user
    failed = Signal(str)          # an action failed; the text is for a person
    count_changed = Signal(int)   # connected peers

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.add_dialog: AddPeerDialog | None = None
        self.confirm_box: QMessageBox | None = None

        self.model = PeersModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)

        self.add_button = QPushButton("Add peer…")
        self.add_button.setObjectName("primary")
        self.add_button.clicked.connect(self.open_add_dialog)
        self.tier_menu = QMenu(self)
        self.tier_actions = {}
        for tier in TIERS:
            action = self.tier_menu.addAction(f"{tier}  —  {TIER_HELP[tier]}")
            action.triggered.connect(lambda _=False, t=tier: self.set_tier(t))
            self.tier_actions[tier] = action
        self.tier_button = QToolButton()
        self.tier_button.setText("Set tier")
        self.tier_button.setMenu(self.tier_menu)
        self.tier_button.setPopupMode(QToolButton.InstantPopup)
        self.ban_button = QPushButton("Ban")
        self.ban_button.setObjectName("danger")
        self.ban_button.clicked.connect(self.ban_selected)
        self.unban_button = QPushButton("Unban")
        self.unban_button.clicked.connect(self.unban_selected)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.clicked.connect(self.confirm_remove)

        bar = QHBoxLayout()
        bar.addWidget(self.add_button)
        bar.addStretch(1)
        for widget in (self.tier_button, self.ban_button, self.unban_button, self.remove_button):
            bar.addWidget(widget)
        self.empty = QLabel("No peers yet. Add one by address, or wait for nodes on the LAN to appear.")
        self.empty.setObjectName("hint")
        self.empty.setAlignment(Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        # shown by the window next to the identity panel, so the table keeps its height
        self.details = PeerDetails(TIER_HELP)
        self.sidebar = self.details
        self.refresh()

    # -- state --------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the peer book, keeping the selection."""
        selected = self.selected_peer()
        self.model.set_peers(self.node.list_peers())
        if selected is not None:
            self.select_peer(selected["id"])
        self._changed()

    def _changed(self) -> None:
        """After any change of the rows: the empty hint, the buttons, the details, the count."""
        self.empty.setVisible(self.model.rowCount() == 0)
        self._update_actions()
        self.count_changed.emit(self.model.connected_count())

    def selected_peer(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.peer(rows[0].row()) if rows else None

    def select_peer(self, peer_id: str) -> bool:
        row = self.model.row_of(peer_id)
        if row < 0:
            return False
        self.table.selectRow(row)
        return True

    def _update_actions(self, *_) -> None:
        peer = self.selected_peer()
        self.details.show_peer(peer)
        for widget in (self.tier_button, self.remove_button):
            widget.setEnabled(peer is not None)
        self.ban_button.setEnabled(peer is not None and not peer["banned"])
        self.unban_button.setEnabled(peer is not None and peer["banned"])
        for tier, action in self.tier_actions.items():
            action.setCheckable(True)
            action.setChecked(peer is not None and peer["tier"] == tier)

    def _context_menu(self, pos) -> None:
        if self.table.indexAt(pos).isValid():
            self.table.selectRow(self.table.indexAt(pos).row())
            menu = QMenu(self)
            menu.addMenu(self.tier_menu).setText("Set tier")
            for button in (self.ban_button, self.unban_button, self.remove_button):
                action = menu.addAction(button.text(), button.click)
                action.setEnabled(button.isEnabled())
            menu.exec(self.table.viewport().mapToGlobal(pos))

    # -- events from the node: each names one peer, so only its row changes ---------------------
    # The frequent ones (connections, reputation, LAN beacons) carry what changed; the rare,
    # user-made ones re-read the one peer, which also picks up what the core changes without
    # an event (the pin and name that `add_peer` sets on a peer that is already known).
    def on_event_peer_connected(self, event) -> None:
        data = event.data
        self._update(event, connected=True, mode=data.get("mode"), address=data.get("address"),
                     name=data.get("name") or None)

    def on_event_peer_disconnected(self, event) -> None:
        self._update(event, connected=False,
                     last_seen=datetime.fromtimestamp(event.at, timezone.utc).isoformat(timespec="seconds"))

    def on_event_reputation_changed(self, event) -> None:
        self._update(event, **_reputation(event))

    def on_event_peer_discovered(self, event) -> None:
        self._update(event, address=event.data.get("address"))

    def on_event_peer_added(self, event) -> None:
        self._update(event)

    on_event_tier_changed = on_event_peer_banned = on_event_peer_unbanned = on_event_peer_added

    def on_event_peer_lost(self, event) -> None:
        """Its beacons stopped: a node only heard on the LAN leaves the table; a peer in the book stays."""
        self._update(event)

    def on_event_peer_removed(self, event) -> None:
        if self.model.remove(str(event.data.get("peer"))):
            self._changed()

    def _update(self, event, **changes) -> None:
        """Apply ``changes`` (those the payload had) to the event's peer; without a row or changes, read it."""
        peer_id = event.data.get("peer")
        if not isinstance(peer_id, str):
            return
        changes = {key: value for key, value in changes.items() if value is not None}
        if not (changes and self.model.update(peer_id, **changes)):
            self._read_peer(peer_id)
        self._changed()

    def _read_peer(self, peer_id: str) -> None:
        try:
            self.model.put(self.node.peer_info(peer_id))
        except UnknownPeer:   # gone again before we looked
            self.model.remove(peer_id)

    # -- add -------------------------------------------------------------------------
    def open_add_dialog(self) -> AddPeerDialog:
        self.add_dialog = AddPeerDialog(self)
        self.add_dialog.submitted.connect(self.add_peer)
        self.add_dialog.open()
        return self.add_dialog

    @asyncSlot(str, object, object)
    async def add_peer(self, address: str, key: str | None, name: str | None) -> None:
        dialog = self.add_dialog
        call = asyncio.ensure_future(self.node.add_peer(address, key=key, name=name))
        if dialog is not None:
            dialog.rejected.connect(call.cancel)   # Cancel while connecting cancels the core call

        def added(peer: dict) -> str:
            if dialog is not None:
                dialog.accept()
            self.model.put(peer)   # the name and pin the user gave come with no event
            self._changed()
            self.select_peer(peer["id"])
            state = "connected" if peer["connected"] else "added; not reachable yet, retrying in the background"
            return f"Peer {_label(peer)} {state}"

        def refused(reason: str) -> None:
            if dialog is not None and dialog.isVisible():
                dialog.show_error(reason, _field_to_fix(dialog, key, call.exception()))
        try:
            await run_action(self, call, failure=f"Could not add {address}",
                             busy=dialog.set_busy if dialog is not None else None,
                             on_error=refused, success=added)
        except asyncio.CancelledError:
            if not call.cancelled():
                raise   # the slot itself is being cancelled
            self.status.emit(f"Adding {address} cancelled; nothing was added")
        finally:
            if dialog is not None:
                dialog.rejected.disconnect(call.cancel)

    # -- tier, ban, remove ----------------------------------------------------------------
    def set_tier(self, tier: str) -> None:
        peer = self.selected_peer()
        if peer is not None:
            run_action_now(self, lambda: self.node.trust(peer["id"], tier), failure="Could not set the tier",
                           success=f"{_label(peer)} is now {tier}")

    @asyncSlot()
    async def ban_selected(self) -> None:
        peer = self.selected_peer()
        if peer is not None:
            await run_action(self, self.node.ban(peer["id"]), failure=f"Could not ban {_label(peer)}",
                             success=f"{_label(peer)} is banned and disconnected")

    def unban_selected(self) -> None:
        peer = self.selected_peer()
        if peer is not None:
            run_action_now(self, lambda: self.node.unban(peer["id"]), failure=f"Could not unban {_label(peer)}",
                           success=f"{_label(peer)} is no longer banned")

    def confirm_remove(self) -> QMessageBox | None:
        peer = self.selected_peer()
        if peer is None:
            return None
        self.confirm_box = confirm(
            self, "Remove peer", f"Remove {_label(peer)} from the peer book?",
            "Its pinned key, tier and reputation are forgotten and the "
            "connection is closed. If it connects again it is a new, unknown peer.", "Remove",
            lambda: self.remove_peer(peer["id"], _label(peer)))
        return self.confirm_box

    @asyncSlot(str, str)
    async def remove_peer(self, peer_id: str, label: str) -> None:
        await run_action(self, self.node.remove_peer(peer_id), failure=f"Could not remove {label}",
                         success=f"{label} removed")


def _field_to_fix(dialog: AddPeerDialog, key: str | None, exc: BaseException | None):
    """The dialog field a failure points at: the key when it was refused, else the address."""
    if key is not None and (isinstance(exc, KeyMismatch)
                            or (isinstance(exc, BadRequest) and "key" in str(exc))):
        return dialog.key
    return dialog.address


def _label(peer: dict) -> str:
    return peer["name"] or peer["id"][:12]


def _reputation(event) -> dict:
    """The event's new reputation, rounded as ``node.peer_view`` rounds it (nothing if absent)."""
    value = event.data.get("reputation")
    return {"reputation": round(float(value), 4)} if isinstance(value, (int, float)) else {}
