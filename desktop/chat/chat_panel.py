"""The Chat tab: contacts on the left, the open conversation on the right.

It renders ``node.service("chat")`` (one-to-one conversations, its ``groups``
and its ``files``): the contacts list and the requests are
redrawn (coalesced) on peer and chat events; the open conversation is changed
a row at a time from the ``chat_*`` events, whose payloads carry ids only (the
text is read from the service, for the open conversation only). Every user
action is one service call through :mod:`desktop.actions`; nothing blocks the
loop and nothing here writes anything anywhere.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QCheckBox, QLabel, QLineEdit, QListView,
                               QMessageBox, QPushButton, QSplitter, QVBoxLayout, QWidget)
from qasync import asyncSlot

from core.errors import CoveyError

from ..actions import confirm, run_action, run_action_now
from ..bridge import Refresh
from ..style import caption
from .contacts_model import CONTACT_ROLE, ContactsFilter, ContactsModel
from .conversation_view import ConversationView
from .file_actions import CUT_NOTE, RESUMED_NOTE, FileActions
from .group_actions import GroupActions, group_row, invitation_row
from .group_dialogs import CreateGroupDialog, MembersDialog
from .messages_model import MessagesModel
from .notifier import Notifier
from .requests_box import RequestDialog, RequestsBox
from .safety_dialog import SafetyDialog

log = logging.getLogger("covey.desktop.chat")
CHAT = "chat"     # the capability a peer needs to chat (the node's policy table decides per tier)


class ChatPanel(GroupActions, FileActions, QWidget):
    """Renders the chat service and turns clicks into its calls (groups: :class:`GroupActions`,
    files: :class:`FileActions`)."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, chat, parent=None):
        super().__init__(parent)
        self.node = node
        self.chat = chat
        self.peer: str | None = None            # the open one-to-one conversation
        self.group: str | None = None           # or the open group
        self.departed: OrderedDict[str, dict] = OrderedDict()   # groups we are no longer in: shown read-only
        self.file_places: OrderedDict[str, int] = OrderedDict()  # file id -> the message id its row follows
        self.file_notes: dict[str, str] = {}    # file id -> "connection cut" / "resumed"
        self.group_dialog: CreateGroupDialog | None = None
        self.members_dialog: MembersDialog | None = None
        self.notifier = Notifier(self)
        self.confirm_box: QMessageBox | None = None
        self.safety_dialog: SafetyDialog | None = None
        self.request_dialog: RequestDialog | None = None
        self._sending = asyncio.Lock()

        self.contacts = ContactsModel(self)
        self.contacts_view = ContactsFilter(self)
        self.contacts_view.setSourceModel(self.contacts)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter contacts")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter contacts")
        self.filter.setToolTip("Show only the contacts whose name or id contains this text")
        self.filter.textChanged.connect(self.contacts_view.set_text)
        self.list = QListView()
        self.list.setModel(self.contacts_view)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.list.setAccessibleName("Contacts")
        self.list.setToolTip("Peers you may chat with (CORE, SANDBOX, EXTERNAL) and open conversations")
        self.list.setSpacing(2)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.ElideRight)
        self.list.setStyleSheet("QListView { background: #ffffff; border: 1px solid #d9dce1; border-radius: 6px; }"
                                "QListView::item { padding: 4px; }"
                                "QListView::item:selected { background: #dbe7fb; color: #1f2430; }")
        self.list.selectionModel().currentChanged.connect(self._picked)
        self.list.activated.connect(lambda *_: self.conversation.box.setFocus())
        self.empty = QLabel("No contacts yet: raise a peer to EXTERNAL (or higher) on the Trust tab, "
                            "or ask one to chat.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        self.ask_button = QPushButton("Ask to &chat…")
        self.ask_button.setToolTip("Send a contact request (one short line) to a connected peer "
                                   "that may not chat with you yet")
        self.ask_button.setAccessibleName("Send a contact request")
        self.ask_button.clicked.connect(self.open_request_dialog)
        self.group_button = QPushButton("New &group…")
        self.group_button.setToolTip("Start a group with some of your contacts; you decide who is in it")
        self.group_button.setAccessibleName("Create a group")
        self.group_button.clicked.connect(self.open_group_dialog)
        self.requests_box = RequestsBox()
        self.requests_box.accept_requested.connect(self.accept)
        self.requests_box.refuse_requested.connect(self.refuse)

        prefs = self.chat.settings()
        self.receipts_box = QCheckBox("Read &receipts")
        self.receipts_box.setChecked(prefs["read_receipts"])
        self.receipts_box.setToolTip("Tell contacts when you read their messages, and see when they read yours; "
                                     "off: neither is sent nor shown")
        self.receipts_box.setAccessibleName("Read receipts")
        self.typing_box = QCheckBox("&Typing indicator")
        self.typing_box.setAccessibleName("Typing indicator")
        self.typing_box.setChecked(prefs["typing"])
        self.typing_box.setToolTip("Tell contacts while you type, and see when they do; off: neither")
        self.receipts_box.toggled.connect(lambda on: self.change_settings(read_receipts=on))
        self.typing_box.toggled.connect(lambda on: self.change_settings(typing=on))

        self.model = MessagesModel(self.name_of, self)
        self.model.read_receipts = prefs["read_receipts"]
        self.conversation = ConversationView(self.model)
        self.conversation.send_requested.connect(self.send)
        self.conversation.typing_changed.connect(self.typing)
        self.conversation.timer_chosen.connect(self.set_timer)
        self.conversation.safety_requested.connect(self.open_safety)
        self.conversation.close_requested.connect(self.confirm_close)
        self.conversation.file_requested.connect(self.send_file)
        self.conversation.file_action.connect(self.file_action)
        self.conversation.members_requested.connect(self.open_members)
        self.conversation.leave_requested.connect(self.confirm_leave)
        self.conversation.invite_answered.connect(self.answer_invite)
        self.conversation.dismiss_requested.connect(self.dismiss_group)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 4, 0)
        side_layout.addWidget(self.filter)
        side_layout.addWidget(self.list, 1)
        side_layout.addWidget(self.empty)
        side_layout.addWidget(self.group_button)
        side_layout.addWidget(self.ask_button)
        side_layout.addWidget(self.requests_box)
        side_layout.addSpacing(6)
        side_layout.addWidget(caption("Privacy"))
        side_layout.addWidget(self.receipts_box)
        side_layout.addWidget(self.typing_box)
        self.split = QSplitter(Qt.Horizontal)
        self.split.addWidget(side)
        self.split.addWidget(self.conversation)
        self.split.setStretchFactor(0, 2)
        self.split.setStretchFactor(1, 5)
        self.split.setChildrenCollapsible(False)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 4, 0, 0)
        outer.addWidget(self.split)

        self.contacts_update = Refresh(self.reload_contacts, self)
        self.requests_update = Refresh(self.reload_requests, self)
        self.header_update = Refresh(self.refresh_header, self)
        app = QApplication.instance()
        if app is not None:
            app.focusWindowChanged.connect(self._focus_changed)
        self.reload_contacts()
        self.reload_requests()

    # -- names and policy ---------------------------------------------------------------------
    def name_of(self, peer: str) -> str:
        rec = self.node.peers.get(peer)
        return (rec.name if rec is not None and rec.name else None) or peer[:12]

    def may_chat(self, peer: str) -> bool:
        try:
            self.node.peers.check(peer, CHAT)
        except CoveyError:
            return False
        return True

    def seen(self) -> bool:
        """Whether the person can see the open conversation now (then its messages count as read)."""
        return self.isVisible() and self.window().isActiveWindow()

    # -- drawing ------------------------------------------------------------------------------------
    def reload_contacts(self) -> None:
        """Every peer that may chat, and every open conversation, with its summary."""
        summaries = {c["peer"]: c for c in self.chat.conversations_view()}
        rows = []
        for peer in self.node.list_peers():
            if peer["discovered"] or peer["id"] in summaries or not self.may_chat(peer["id"]):
                continue
            summaries[peer["id"]] = self.chat.conversation(peer["id"])
        for summary in summaries.values():
            rows.append({"kind": "peer", "id": summary["peer"], "name": summary["name"],
                         "tier": summary["tier"], "connected": summary["connected"],
                         "verified": summary["verified"], "unread": summary["unread"],
                         "last_at": summary["last_at"], "typing": summary["typing"],
                         "messages": summary["messages"]})
        groups = self.chat.groups.listing()
        invitations = self.chat.groups.invitations()
        for gid in {g["group"] for g in [*groups, *invitations]} & set(self.departed):
            del self.departed[gid]                       # invited again
        for group in groups:
            rows.append(group_row(group["group"], group["name"], len(group["members"]), group["unread"],
                                  group["messages"]))
        for invitation in invitations:
            rows.append(invitation_row(invitation, self.name_of(invitation["creator"])))
        for gid, gone in self.departed.items():
            rows.append(group_row(gid, gone["name"], len(gone["members"]), 0, 0, gone["why"]))
        self.contacts.set_rows(rows)
        self.empty.setVisible(not rows)
        if self.current is not None:
            self._select(self.current)

    @property
    def current(self) -> str | None:
        """The id of the open conversation (a peer's or a group's)."""
        return self.peer or self.group

    def reload_requests(self) -> None:
        self.requests_box.set_requests(self.chat.requests())

    def refresh_header(self) -> None:
        if self.group is not None:
            self.refresh_group()
            return
        if self.peer is None:
            return
        try:
            summary = self.chat.conversation(self.peer)
            mode = self.node.peer_info(self.peer)["mode"] if summary["connected"] else None
        except CoveyError:   # removed meanwhile
            self.close_view()
            return
        self.conversation.show_summary(summary, mode)

    def _select(self, peer: str) -> None:
        row = self.contacts.row_of(peer)
        index = self.contacts_view.mapFromSource(self.contacts.index(row)) if row >= 0 else None
        selection = self.list.selectionModel()
        selection.blockSignals(True)
        if index is not None and index.isValid():
            selection.setCurrentIndex(index, QItemSelectionModel.ClearAndSelect)
        else:
            selection.clearSelection()
        selection.blockSignals(False)

    # -- the open conversation ----------------------------------------------------------------------
    def _picked(self, current, _previous=None) -> None:
        row = current.data(CONTACT_ROLE) if current.isValid() else None
        if row is not None and row["id"] != self.current:
            if row["kind"] == "group":
                self.open_group(row["id"])
            else:
                self.open_conversation(row["id"])

    def open_conversation(self, peer: str) -> bool:
        """Show the conversation with ``peer`` (its messages count as read if the window is in front)."""
        def shown(views: list) -> None:
            self.peer, self.group = peer, None
            self.model.set_rows(self.rows_with_files(peer, views))
            if self.seen():
                self.model.mark_read()
            self.conversation.open(self.name_of(peer))
            self.refresh_header()
            self.show_key_state()
            self.contacts_update.request()     # unread counts
        return run_action_now(self, lambda: self.chat.read(peer, 0, mark=self.seen()),
                              failure=f"Could not open the conversation with {self.name_of(peer)}", success=shown)

    def close_view(self) -> None:
        self.peer = self.group = None
        self.model.clear()
        self.conversation.close_view()

    def show_key_state(self) -> None:
        if self.peer is None:
            return
        try:
            changed = self.chat.verify(self.peer)["key_changed"]
        except CoveyError:
            changed = False
        self.conversation.show_key_changed(key_changed_text(self.name_of(self.peer)) if changed else None)

    def catch_up(self, mark: bool | None = None) -> None:
        """Add the open conversation's new messages (and mark them read if the person sees them)."""
        if self.group is not None:
            self.catch_up_group()
            return
        if self.peer is None:
            return
        peer = self.peer
        run_action_now(self, lambda: self.chat.read(peer, self.model.last_id, mark=self.seen() if mark is None
                                                    else mark),
                       failure=f"Could not read the conversation with {self.name_of(peer)}",
                       success=lambda views: self._caught_up(views, mark))

    def _caught_up(self, views: list, mark: bool | None) -> None:
        self.model.append(views)
        if mark or (mark is None and self.seen()):
            self.model.mark_read()

    def _focus_changed(self, *_) -> None:
        if self.current is not None and self.seen():
            self.catch_up(mark=True)
            self.contacts_update.request()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._focus_changed()

    # -- node events ------------------------------------------------------------------------------
    def on_event_chat_message(self, event) -> None:
        peer, group = event.data.get("peer"), event.data.get("group")
        if group is not None:
            if group == self.group:
                self.catch_up_group()
        elif peer == self.peer:                # a group message is not this conversation's
            self.catch_up()
            self.header_update.request()       # the first message opens the encrypted session
        self.contacts_update.request()
        if event.data.get("direction") == "in" and not self.window().isActiveWindow():
            where = f" in {self.group_name(group)}" if group else ""
            self.notifier.notify("Covey", f"New message from {self.name_of(peer or '')}{where}")

    def on_event_chat_state(self, event) -> None:
        group = event.data.get("group")
        if group is not None:
            if group == self.group:
                self.model.set_state(int(event.data.get("id") or 0), str(event.data.get("state")))
            return
        if event.data.get("peer") == self.peer:
            self.model.set_state(int(event.data.get("id") or 0), str(event.data.get("state")))
            self.header_update.request()       # delivered: the session is open

    def on_event_chat_typing(self, event) -> None:
        if event.data.get("peer") == self.peer:
            self.conversation.show_typing(self.name_of(self.peer), bool(event.data.get("typing")))
        self.contacts_update.request()

    def on_event_chat_timer(self, event) -> None:
        if event.data.get("peer") == self.peer:
            self.conversation.show_timer(str(event.data.get("timer")), event.data.get("by"))

    def on_event_chat_closed(self, event) -> None:
        peer, by = event.data.get("peer"), event.data.get("by")
        if peer == self.peer and by in ("me", "peer"):
            self.model.clear()
            self.conversation.show_typing("", False)
            self.header_update.request()
        if by == "peer":
            self.status.emit(f"{self.name_of(peer or '')} closed the conversation: it is wiped on both sides")
        self.contacts_update.request()

    def on_event_chat_expired(self, event) -> None:
        if event.data.get("peer") == self.peer:
            self.model.remove_ids(event.data.get("ids") or [])
            self.conversation.update_countdown()
        self.contacts_update.request()

    def on_event_chat_request(self, event) -> None:
        self.requests_update.request()
        name = event.data.get("name") or str(event.data.get("peer"))[:12]
        self.status.emit(f"Contact request from {name}: answer it on the Chat tab")
        if not self.window().isActiveWindow():
            self.notifier.notify("Covey", f"Contact request from {name}")

    def on_event_chat_key_changed(self, event) -> None:
        name = event.data.get("name") or self.name_of(str(event.data.get("verified_peer")))
        if self.peer in (event.data.get("peer"), event.data.get("verified_peer")):
            self.conversation.show_key_changed(key_changed_text(name))
        self.failed.emit(key_changed_text(name))

    def on_event_peer_connected(self, event) -> None:
        """Only that contact's online dot changes: a connection never re-reads the peer list."""
        peer = str(event.data.get("peer"))
        connected = event.name == "peer_connected" and self.chat.connected(peer)
        if not self.contacts.set_connected(peer, connected) and self.may_chat(peer):
            self.contacts_update.request()     # a contact the list does not show yet
        if peer == self.peer:
            self.header_update.request()
        if event.name == "peer_connected":
            self._note_files(peer, CUT_NOTE, RESUMED_NOTE)
        else:
            self._note_files(peer, None, CUT_NOTE)

    on_event_peer_disconnected = on_event_peer_connected

    def on_event_tier_changed(self, event) -> None:
        """Who may chat may have changed: the list is read again (coalesced), unless the peer
        neither is in it nor may chat (a stranger connecting is added to the peer book as UNKNOWN)."""
        peer = str(event.data.get("peer"))
        if self.contacts.row_of(peer) >= 0 or self.may_chat(peer):
            self.contacts_update.request()
        if peer == self.peer:
            self.header_update.request()

    on_event_peer_added = on_event_tier_changed
    on_event_peer_banned = on_event_tier_changed
    on_event_peer_unbanned = on_event_tier_changed

    def on_event_peer_removed(self, event) -> None:
        if event.data.get("peer") == self.peer:
            self.close_view()
        self.contacts_update.request()

    def on_event_node_stopping(self, event) -> None:
        for refresh in (self.contacts_update, self.requests_update, self.header_update):
            refresh.cancel()

    # -- actions ------------------------------------------------------------------------------------
    @asyncSlot(str)
    async def send(self, text: str) -> None:
        peer, gid = self.peer, self.group
        if peer is None and gid is None:
            return
        async with self._sending:     # one at a time: messages keep the order they were written in
            if gid is not None:
                await run_action(self, self.chat.groups.send(gid, text),
                                 failure=f"Could not send to {self.group_name(gid)}",
                                 on_error=lambda _: self.conversation.not_sent(text) if gid == self.group else None)
                return
            assert peer is not None
            await run_action(self, self.chat.send(peer, text), failure=f"Could not send to {self.name_of(peer)}",
                             on_error=lambda _: self.conversation.not_sent(text) if peer == self.peer else None)

    @asyncSlot(bool)
    async def typing(self, on: bool) -> None:
        if self.peer is not None and self.typing_box.isChecked():
            await run_action(self, self.chat.typing(self.peer, on), failure="Could not send the typing indicator")

    def set_timer(self, name: str) -> None:
        peer = self.peer
        if peer is None:
            return
        run_action_now(self, lambda: self.chat.set_timer(peer, name), failure="Could not set the timer",
                       on_error=lambda _: self.refresh_header(),
                       success=lambda view: f"Messages with {self.name_of(peer)} now disappear "
                       + ("never" if view["timer"] == "off" else f"after {self.conversation.timer.currentText()}"))

    def confirm_close(self) -> QMessageBox | None:
        peer = self.peer
        if peer is None:
            return None
        name = self.name_of(peer)
        self.confirm_box = confirm(
            self, "Close conversation", f"Close the conversation with {name}?",
            f"Every message is wiped here and on {name}'s node. This cannot be undone.", "Close and wipe",
            lambda: self._close_confirmed(peer))
        return self.confirm_box

    def _close_confirmed(self, peer: str) -> None:
        name = self.name_of(peer)

        def closed(view: dict) -> str:
            if peer == self.peer:
                self.model.clear()
                self.refresh_header()
            return (f"Conversation with {name} closed and wiped here"
                    + ("; their node wipes it too" if view["peer_told"] else ""))
        run_action_now(self, lambda: self.chat.close(peer), failure=f"Could not close the conversation with {name}",
                       success=closed)

    def open_safety(self) -> SafetyDialog | None:
        peer = self.peer
        if peer is None:
            return None
        try:
            view, png = self.chat.verify(peer), self.chat.qr_png(peer)
        except CoveyError as exc:
            self.failed.emit(f"Could not show the safety number: {exc}")
            return None
        dialog = SafetyDialog(self.name_of(peer), view, png, self)
        dialog.mark_requested.connect(lambda: self.mark_verified(peer, dialog))
        self.safety_dialog = dialog
        dialog.open()
        return dialog

    def mark_verified(self, peer: str, dialog: SafetyDialog) -> None:
        def marked(view: dict) -> str:
            dialog.show_state(view)
            self.header_update.request()
            self.show_key_state()
            self.contacts_update.request()
            return f"{self.name_of(peer)} is marked verified"
        run_action_now(self, lambda: self.chat.verify(peer, mark=True), failure="Could not mark the contact verified",
                       success=marked)

    def change_settings(self, **changes) -> None:
        def changed(prefs: dict) -> str:
            self.model.set_read_receipts(prefs["read_receipts"])
            return (f"Read receipts {'on' if prefs['read_receipts'] else 'off'}, "
                    f"typing indicator {'on' if prefs['typing'] else 'off'}")
        run_action_now(self, lambda: self.chat.settings(**changes), failure="Could not change the chat settings",
                       success=changed)

    def accept(self, peer: str) -> None:
        def accepted(view: dict) -> str:
            self.reload_requests()
            self.reload_contacts()
            return f"{view['name'] or peer[:12]} may now chat with you (EXTERNAL)"
        run_action_now(self, lambda: self.chat.accept(peer), failure="Could not accept the request", success=accepted)

    def refuse(self, peer: str) -> None:
        def refused(_view: dict) -> str:
            self.reload_requests()
            return "Request refused"
        run_action_now(self, lambda: self.chat.refuse(peer), failure="Could not refuse the request", success=refused)

    def strangers(self) -> list[dict]:
        """Connected peers that may not chat with us yet (they can get a contact request)."""
        return [p for p in self.node.list_peers()
                if p["connected"] and not p["banned"] and not self.may_chat(p["id"])]

    def open_request_dialog(self) -> RequestDialog:
        dialog = RequestDialog(self.strangers(), self)
        dialog.submitted.connect(self.send_request)
        self.request_dialog = dialog
        dialog.open()
        return dialog

    @asyncSlot(str, str)
    async def send_request(self, peer: str, text: str) -> None:
        dialog = self.request_dialog
        if dialog is None:
            return
        if await run_action(self, self.chat.request(peer, text), failure="Could not send the request",
                            busy=dialog.set_busy, on_error=dialog.show_refusal,
                            success=f"Contact request sent to {self.name_of(peer)}"):
            dialog.accept()


def key_changed_text(name: str) -> str:
    return (f"KEY CHANGED: {name} was verified with another key. This may be someone else: chat is refused "
            f"until you compare the new safety number in person and mark it verified again.")
