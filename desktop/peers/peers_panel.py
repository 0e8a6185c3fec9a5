"""The Trust tab: the peer table (tier editable per row), filter, add / contact links, ban, remove."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from PySide6.QtCore import QEvent, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QFontMetrics, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMenu, QMessageBox, QPushButton, QScrollArea, QSplitter, QTableView,
                               QToolButton, QVBoxLayout, QWidget)
from qasync import asyncSlot

from core.errors import BadRequest, CoveyError, KeyMismatch, UnknownPeer, human

from ..actions import confirm, run_action, run_action_now
from . import contact
from .peer_details import PeerDetails
from .peer_dialogs import AddPeerDialog
from .peers_model import (COLUMNS, ID, LAST_SEEN, MODE, NAME, PEER_ROLE, ROUTE, SEARCH_ROLE, TIER, VERIFIED,
                          PeersModel)
from .tier_delegate import TIER_HELP, TIERS, TierDelegate
from .trust_dialog import CoreConfirmDialog

AGE_REFRESH_MS = 60_000   # 'Last seen' texts age by the minute


class PeersPanel(QWidget):
    """Renders ``node.list_peers()`` once, then follows the peer events row by row; clicks become node calls."""

    status = Signal(str)          # something worth telling the user
    failed = Signal(str)          # an action failed; the text is for a person
    count_changed = Signal(int)   # connected peers

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.chat = node.service("chat") if node.has_service("chat") else None
        self.add_dialog: AddPeerDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.core_dialog: CoreConfirmDialog | None = None
        self.context_menu: QMenu | None = None

        self.model = PeersModel(self, verified_of=self._verified_of)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(SEARCH_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.table = QTableView()
        self.table.setModel(self.model)   # the proxy is put between them only while a filter is set
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.SelectedClicked
                                   | QAbstractItemView.EditKeyPressed)
        self.tier_delegate = TierDelegate(self.table)
        self.tier_delegate.tier_chosen.connect(self.request_tier)
        self.table.setItemDelegateForColumn(TIER, self.tier_delegate)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)   # no per-row measuring
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.setToolTip("Your peers. Double-click a tier to change it; right-click a row for more")
        self.table.setAccessibleName("Peers and their trust tiers")
        header = self.table.horizontalHeader()
        header.setToolTip("Hover a column title for what it means")
        header.setAccessibleName("Peer table columns")
        self.table.verticalHeader().setAccessibleName("Peer table rows")
        self.table.verticalHeader().setToolTip("Rows of the peer table")
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self._size_columns()
        self.table.selectionModel().selectionChanged.connect(self._update_actions)

        self.filter = QLineEdit(placeholderText="Filter: name, ID, tier or address")
        self.filter.setClearButtonEnabled(True)
        self.filter.setToolTip("Show only the peers whose name, ID, tier or address contains this text")
        self.filter.setAccessibleName("Filter peers")
        self.filter.textChanged.connect(self._filter)
        self.add_button = QPushButton("&Add peer…")
        self.add_button.setObjectName("primary")
        self.add_button.setToolTip("Add a peer by its address and, to be sure it is them, its ID")
        self.add_button.setAccessibleName("Add peer")
        self.add_button.clicked.connect(self.open_add_dialog)
        self.link_menu = QMenu(self)
        self.link_menu.setToolTipsVisible(True)
        self.paste_link_action = self.link_menu.addAction("Add from a copied contact link", self.add_from_clipboard)
        self.paste_link_action.setToolTip("Open Add peer filled in from the covey://… link on the clipboard")
        self.copy_link_action = self.link_menu.addAction("Copy my contact link", self.copy_contact_link)
        self.copy_link_action.setToolTip("Copy this node's covey://ADDRESS#ID link to send to a peer")
        self.link_button = QToolButton()
        self.link_button.setText("Contact link")
        self.link_button.setMenu(self.link_menu)
        self.link_button.setPopupMode(QToolButton.InstantPopup)
        self.link_button.setToolTip("Add a peer from a copied contact link, or copy yours to share")
        self.link_button.setAccessibleName("Contact link")

        self.tier_menu = QMenu(self)
        self.tier_menu.setToolTipsVisible(True)
        self.tier_group = QActionGroup(self)   # one of many: radio items, never checkboxes
        self.tier_group.setExclusive(True)
        self.tier_actions = {}
        for tier in TIERS:
            action = self.tier_menu.addAction(f"{tier}  —  {TIER_HELP[tier]}")
            action.setCheckable(True)
            action.setToolTip(TIER_HELP[tier] + (" (asks you to compare fingerprints first)" if tier == "core" else ""))
            self.tier_group.addAction(action)
            action.triggered.connect(lambda _=False, t=tier: self.set_tier(t))
            self.tier_actions[tier] = action
        self.tier_button = QToolButton()
        self.tier_button.setText("Set tier")
        self.tier_button.setMenu(self.tier_menu)
        self.tier_button.setPopupMode(QToolButton.InstantPopup)
        self.tier_button.setToolTip("What the selected peer may do on this node")
        self.tier_button.setAccessibleName("Set tier")
        self.ban_button = QPushButton("Ban")
        self.ban_button.setObjectName("danger")
        self.ban_button.setToolTip("Disconnect the selected peer and refuse it until you lift the ban")
        self.ban_button.setAccessibleName("Ban peer")
        self.ban_button.clicked.connect(self.ban_selected)
        self.unban_button = QPushButton("Unban")
        self.unban_button.setToolTip("Lift the ban: the peer's tier applies again")
        self.unban_button.setAccessibleName("Unban peer")
        self.unban_button.clicked.connect(self.unban_selected)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("Forget the selected peer: its pinned key, tier and reputation (Delete)")
        self.remove_button.setAccessibleName("Remove peer")
        self.remove_button.clicked.connect(self.confirm_remove)
        self.table.installEventFilter(self)   # Delete on a selected row: Remove…

        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.add_button)
        top.addWidget(self.link_button)
        bar = QHBoxLayout()
        bar.addStretch(1)
        for widget in (self.tier_button, self.ban_button, self.unban_button, self.remove_button):
            bar.addWidget(widget)
        self.empty = QLabel("No peers yet. Add one by address or contact link, or wait for nodes "
                            "on the LAN to appear.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(bar)
        # the selected peer's details under the table (a splitter: the person chooses the share)
        self.details = PeerDetails(TIER_HELP)
        details = QScrollArea()
        details.setWidget(self.details)
        details.setWidgetResizable(True)
        details.setFrameShape(QFrame.NoFrame)
        details.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        body = QSplitter(Qt.Vertical)
        body.addWidget(self.table)
        body.addWidget(details)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setChildrenCollapsible(False)
        self.details_area = details
        layout.addWidget(body, 1)
        layout.addWidget(self.empty)
        self.ages = QTimer(self)
        self.ages.timeout.connect(self.model.refresh_times)
        self.ages.start(AGE_REFRESH_MS)
        self.refresh()

    # -- state --------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the peer book, keeping the selection."""
        selected = self.selected_peer()
        self.model.set_peers(self.node.list_peers())
        if selected is not None:
            self.select_peer(selected["id"])
        self._changed()

    def _verified_of(self, peer_id: str) -> bool | None:
        return None if self.chat is None else self.chat.is_verified(peer_id)

    def _filter(self, text: str) -> None:
        """Show the rows whose search text holds ``text``. Without a filter the table shows the
        model itself: a proxy costs Python calls on every paint, which 1,000 rows feel."""
        text = text.strip()
        self.proxy.setFilterFixedString(text)
        wanted = self.proxy if text else self.model
        if self.table.model() is not wanted:
            selected, old = self.selected_peer(), self.table.selectionModel()
            self.table.setModel(wanted)   # a new selection model: connect it again
            old.deleteLater()
            self.table.selectionModel().selectionChanged.connect(self._update_actions)
            self._size_columns()
            if selected is not None and self._view_index(self.model.row_of(selected["id"])).isValid():
                self.table.selectRow(self._view_index(self.model.row_of(selected["id"])).row())
        self._changed()

    def _size_columns(self) -> None:
        """Fixed widths from the widest value a column can hold: ResizeToContents would measure
        every row on each change."""
        header = self.table.horizontalHeader()
        metrics = self.table.fontMetrics()
        widest = {TIER: ("external", "sandbox", "unknown", "banned"), MODE: ("asymmetric", "symmetric"),
                  ROUTE: ("inbound", "SOCKS5", "direct"), VERIFIED: ("✓ yes",), LAST_SEEN: ("59 min ago",)}
        for col, title in enumerate(COLUMNS):
            texts = (title,) + widest.get(col, ())
            header.resizeSection(col, max(metrics.horizontalAdvance(t) for t in texts) + 32)
        header.resizeSection(NAME, 140)
        header.resizeSection(ID, QFontMetrics(self.model.mono_font).horizontalAdvance("0" * 12) + 32)
        header.setStretchLastSection(True)

    def _view_index(self, row: int):
        """The table's index of the model's ``row`` (invalid when the filter hides it)."""
        index = self.model.index(row, 0)
        return self.proxy.mapFromSource(index) if self.table.model() is self.proxy else index

    def _changed(self) -> None:
        """After any change of the rows: the empty hint, the buttons, the details, the count."""
        self.empty.setVisible(self.model.rowCount() == 0)
        self._update_actions()
        self.count_changed.emit(self.model.connected_count())

    def selected_peer(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(PEER_ROLE) if rows else None

    def select_peer(self, peer_id: str) -> bool:
        """Select the peer's row (clearing a filter that hides it); False when it has none."""
        row = self.model.row_of(peer_id)
        if row < 0:
            return False
        index = self._view_index(row)
        if not index.isValid():
            self.filter.clear()
            index = self._view_index(row)
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    def _update_actions(self, *_) -> None:
        peer = self.selected_peer()
        self.details.show_peer(peer)
        self.details_area.setVisible(peer is not None)
        for widget in (self.tier_button, self.remove_button):
            widget.setEnabled(peer is not None)
        self.ban_button.setEnabled(peer is not None and not peer["banned"])
        self.unban_button.setEnabled(peer is not None and peer["banned"])
        for tier, action in self.tier_actions.items():
            action.setChecked(peer is not None and peer["tier"] == tier)
        if peer is None:   # an exclusive group keeps one checked: let it have none
            self.tier_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
            for action in self.tier_actions.values():
                action.setChecked(False)
            self.tier_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.Exclusive)

    def eventFilter(self, watched, event) -> bool:
        if (watched is self.table and event.type() == QEvent.KeyPress and event.key() == Qt.Key_Delete
                and self.table.state() != QAbstractItemView.EditingState and self.selected_peer() is not None):
            self.confirm_remove()
            return True
        return super().eventFilter(watched, event)

    def _context_menu(self, pos) -> None:
        if self.table.indexAt(pos).isValid():
            self.table.selectRow(self.table.indexAt(pos).row())
            menu = QMenu(self)
            menu.setToolTipsVisible(True)
            menu.addMenu(self.tier_menu).setText("Set tier")
            for button in (self.ban_button, self.unban_button, self.remove_button):
                action = menu.addAction(button.text(), button.click)
                action.setEnabled(button.isEnabled())
                action.setToolTip(button.toolTip())
            self.context_menu = menu
            menu.popup(self.table.viewport().mapToGlobal(pos))

    # -- events from the node: each names one peer, so only its row changes ---------------------
    # The frequent ones (connections, reputation, LAN beacons) carry what changed; the rare,
    # user-made ones re-read the one peer, which also picks up what the core changes without
    # an event (the pin and name that `add_peer` sets on a peer that is already known).
    def on_event_peer_connected(self, event) -> None:
        data = event.data
        self._update(event, connected=True, mode=data.get("mode"), address=data.get("address"),
                     name=data.get("name") or None, route=data.get("route"))

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

    # -- contact links -----------------------------------------------------------------
    def add_from_clipboard(self) -> AddPeerDialog | None:
        """Open Add peer filled in from the contact link on the clipboard."""
        text = QGuiApplication.clipboard().text()
        try:
            contact.parse(text)
        except CoveyError as exc:
            self.failed.emit(f"The clipboard holds no contact link ({human(exc)}): copy the covey://… link first")
            return None
        dialog = self.open_add_dialog()
        dialog.use_link(text)   # the dialog's own paste path
        dialog.name.setFocus(Qt.OtherFocusReason)   # what is left to fill in: a name, if any
        return dialog

    def copy_contact_link(self) -> str | None:
        """Put this node's contact link on the clipboard."""
        try:
            link = contact.ours(self.node)
        except CoveyError as exc:
            self.failed.emit(f"Could not make the contact link: {human(exc)}")
            return None
        QGuiApplication.clipboard().setText(link)
        self.status.emit(f"Contact link copied: {link}")
        return link

    # -- tier, ban, remove ----------------------------------------------------------------
    def set_tier(self, tier: str) -> None:
        """The tier menu's choice for the selected peer."""
        peer = self.selected_peer()
        if peer is not None:
            self.request_tier(peer["id"], tier)

    def request_tier(self, peer_id: str, tier: str) -> CoreConfirmDialog | None:
        """Set the peer's tier; raising it to CORE first asks the person to compare the
        fingerprints or the safety number (the dialog is returned; Cancel changes nothing)."""
        row = self.model.row_of(peer_id)
        if row < 0:
            return None
        peer = self.model.peer(row)
        if tier != "core" or peer["tier"] == "core":
            self._apply_tier(peer, tier)
            return None
        safety = None
        if self.chat is not None:
            try:
                safety = self.chat.verify(peer_id)
            except CoveyError:
                safety = None   # the fingerprints are still there to compare
        dialog = CoreConfirmDialog(peer, self.node.identity.fingerprint, safety, self)
        dialog.accepted.connect(lambda: self._apply_tier(peer, "core"))
        dialog.rejected.connect(lambda: self.status.emit(f"{_label(peer)} stays {peer['tier']}"))
        dialog.finished.connect(self._update_actions)   # the radio item goes back to the real tier
        self.core_dialog = dialog
        dialog.open()
        return dialog

    def _apply_tier(self, peer: dict, tier: str) -> None:
        run_action_now(self, lambda: self.node.trust(peer["id"], tier), failure="Could not set the tier",
                       success=f"{_label(peer)} is now {tier}")
        self._update_actions()

    def on_event_chat_verified(self, event) -> None:
        """Chat marked a peer verified (and maybe retired others): their Verified cells change."""
        retired = event.data.get("retired")
        peers = [event.data.get("peer")] + (list(retired) if isinstance(retired, list) else [])
        self.model.refresh_verified(p for p in peers if isinstance(p, str))
        self._update_actions()

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
