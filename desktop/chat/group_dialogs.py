"""The two group dialogs: create a group, and see (or, as its creator, change) its members.

Both only draw and ask (signals); the panel makes the ``chat.groups`` calls and
shows a refusal in the dialog (``show_refusal``). Names come from the network:
list items and labels are plain text.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QPushButton, QVBoxLayout)

PEER_ROLE = Qt.UserRole + 1
INVITED_ROLE = Qt.UserRole + 2


def peer_label(peer: dict) -> str:
    return f"{peer['name'] or '(unnamed)'} · {peer['id'][:12]}"


def _error_label() -> QLabel:
    label = QLabel()
    label.setObjectName("error")
    label.setTextFormat(Qt.PlainText)
    label.setWordWrap(True)
    label.hide()
    return label


class CreateGroupDialog(QDialog):
    """A name and the members to start with (``submitted(name, [peer id, ...])``)."""

    submitted = Signal(str, list)

    def __init__(self, candidates: list[dict], parent=None):
        super().__init__(parent)
        self.setWindowTitle("New group")
        self.name = QLineEdit()
        self.name.setMaxLength(200)      # the service says how long a name may be (the dialog shows why not)
        self.name.setPlaceholderText("Lab team")
        self.name.setAccessibleName("Group name")
        self.name.setToolTip("What the group is called; every member sees this name")
        self.peers = QListWidget()
        self.peers.setAccessibleName("Members to add")
        self.peers.setToolTip("Tick the contacts to add; only peers you may chat with are listed")
        for peer in candidates:
            item = QListWidgetItem(peer_label(peer))
            item.setData(PEER_ROLE, peer["id"])
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked)
            item.setToolTip(f"id: {peer['id']}")
            self.peers.addItem(item)
        hint = QLabel("You create the group and decide who is in it. Messages go to each member over "
                      "its own end-to-end encrypted session, and are kept in memory only."
                      if candidates else "No contacts to add yet: a group needs peers you may chat with.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        self.error = _error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.create_button = self.buttons.addButton("Create group", QDialogButtonBox.AcceptRole)
        self.create_button.setObjectName("primary")
        self.create_button.setToolTip("Create the group; the members you ticked see it at once")
        self.create_button.setAccessibleName("Create group")
        self.create_button.setEnabled(False)
        self.buttons.button(QDialogButtonBox.Cancel).setToolTip("Close without creating a group")
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        self.name.textChanged.connect(self._changed)
        self.peers.itemChanged.connect(self._changed)
        form = QFormLayout()
        form.addRow("&Name:", self.name)
        form.addRow("M&embers:", self.peers)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(440, 360)

    def chosen(self) -> list[str]:
        return [self.peers.item(i).data(PEER_ROLE) for i in range(self.peers.count())
                if self.peers.item(i).checkState() == Qt.Checked]

    def _changed(self, *_) -> None:
        self.create_button.setEnabled(bool(self.name.text().strip()) and bool(self.chosen()))

    def _submit(self) -> None:
        if self.create_button.isEnabled():
            self.error.hide()
            self.submitted.emit(self.name.text().strip(), self.chosen())

    def set_busy(self, busy: bool) -> None:
        for widget in (self.create_button, self.name, self.peers):
            widget.setEnabled(not busy)
        if not busy:
            self._changed()

    def show_refusal(self, reason: str) -> None:
        self.error.setText(reason)
        self.error.show()


class MembersDialog(QDialog):
    """A group's members; its creator also invites (``invite_requested``) and removes
    (``remove_requested``) members."""

    invite_requested = Signal(str)
    remove_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Group members")
        self.list = QListWidget()
        self.list.setAccessibleName("Members")
        self.list.setToolTip("Everyone in the group; every member sees this same list, signed by its creator")
        self.list.currentRowChanged.connect(self._selection)
        self.creator_note = QLabel()
        self.creator_note.setObjectName("hint")
        self.creator_note.setTextFormat(Qt.PlainText)
        self.creator_note.setWordWrap(True)
        self.remove_button = QPushButton("&Remove from group")
        self.remove_button.setObjectName("danger")
        self.remove_button.setToolTip("The member's copy of the group is wiped and it gets none of the later "
                                      "messages; an invited peer's invitation is withdrawn")
        self.remove_button.setAccessibleName("Remove member")
        self.remove_button.clicked.connect(self._remove)
        self.candidates = QComboBox()
        self.candidates.setAccessibleName("Contact to invite")
        self.candidates.setToolTip("Contacts you may chat with who are not in the group yet")
        self.candidates.setPlaceholderText("every contact is in the group already")
        self.invite_button = QPushButton("&Invite")
        self.invite_button.setToolTip("Invite this contact: it sees the group's name and members, and joins if "
                                      "it accepts")
        self.invite_button.setAccessibleName("Invite to group")
        self.invite_button.clicked.connect(self._invite)
        self.error = _error_label()
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.button(QDialogButtonBox.Close).setToolTip("Close this window")
        close.rejected.connect(self.reject)
        invite = QHBoxLayout()
        invite.addWidget(self.candidates, 1)
        invite.addWidget(self.invite_button)
        self.manage = QFormLayout()
        self.manage.addRow("Add:", invite)
        layout = QVBoxLayout(self)
        layout.addWidget(self.creator_note)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.remove_button)
        layout.addLayout(self.manage)
        layout.addWidget(self.error)
        layout.addWidget(close)
        self.creator = False
        self.creator_id = ""
        self.resize(420, 380)

    def show_group(self, view: dict, candidates: list[dict]) -> None:
        """Redraw from a group view (``chat.groups.view``) and the contacts that could be invited."""
        self.creator = bool(view["creator_is_me"])
        self.creator_id = view["creator"]
        selected = self.selected()
        self.list.clear()
        invited = view.get("invited") or []
        for member in [*view["members"], *invited]:
            name = view["names"].get(member) or member[:12]
            tags = [t for t, on in (("creator", member == view["creator"]),
                                    ("invited, not answered yet", member in invited)) if on]
            item = QListWidgetItem(name + (f" ({', '.join(tags)})" if tags else ""))
            item.setData(PEER_ROLE, member)
            item.setData(INVITED_ROLE, member in invited)
            item.setToolTip(f"id: {member}" + ("\ninvited: a member once it accepts" if member in invited else ""))
            self.list.addItem(item)
            if member == selected:
                self.list.setCurrentItem(item)
        creator = view["names"].get(view["creator"]) or view["creator"][:12]
        self.creator_note.setText(f"{view['name']}: {len(view['members'])} members. "
                                  + ("You created it: you add and remove members."
                                     if self.creator else f"{creator} created it and decides who is in it."))
        self.candidates.clear()
        for peer in candidates:
            if peer["id"] not in view["members"] and peer["id"] not in invited:
                self.candidates.addItem(peer_label(peer), peer["id"])
        self.candidates.setCurrentIndex(0 if self.candidates.count() else -1)   # a placeholder picks none
        for widget in (self.remove_button, self.candidates, self.invite_button):
            widget.setVisible(self.creator)
        self.manage.setRowVisible(0, self.creator)
        self.invite_button.setEnabled(self.candidates.count() > 0)
        self._selection()

    def members(self) -> list[str]:
        """The members listed (not the open invitations)."""
        return [self.list.item(i).data(PEER_ROLE) for i in range(self.list.count())
                if not self.list.item(i).data(INVITED_ROLE)]

    def invited(self) -> list[str]:
        """The peers with an open invitation (the creator sees them)."""
        return [self.list.item(i).data(PEER_ROLE) for i in range(self.list.count())
                if self.list.item(i).data(INVITED_ROLE)]

    def selected(self) -> str | None:
        item = self.list.currentItem()
        return item.data(PEER_ROLE) if item is not None else None

    def _selection(self, *_) -> None:
        self.remove_button.setEnabled(self.creator and self.selected() not in (None, self.creator_id))

    def _remove(self) -> None:
        peer = self.selected()
        if peer is not None:
            self.error.hide()
            self.remove_requested.emit(peer)

    def _invite(self) -> None:
        peer = self.candidates.currentData()
        if peer:
            self.error.hide()
            self.invite_requested.emit(peer)

    def show_refusal(self, reason: str) -> None:
        self.error.setText(reason)
        self.error.show()
