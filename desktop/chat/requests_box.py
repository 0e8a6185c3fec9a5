"""Contact requests: the ones received (accept or refuse) and sending one to a stranger."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from core.chat.protocol import MAX_REQUEST_TEXT

from ..style import caption

REQUEST_ROLE = Qt.UserRole + 1


class RequestsBox(QWidget):
    """The requests waiting for an answer (hidden when there are none)."""

    accept_requested = Signal(str)
    refuse_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = caption("Contact requests")
        self.list = QListWidget()
        self.list.setAccessibleName("Contact requests")
        self.list.setToolTip("Peers you do not chat with yet who asked to; accept to let them chat "
                             "(they become EXTERNAL peers)")
        self.list.setMaximumHeight(110)
        self.list.setWordWrap(True)
        self.list.currentRowChanged.connect(self._selection)
        self.accept_button = QPushButton("&Accept")
        self.accept_button.setToolTip("Let this peer chat with you (its tier becomes EXTERNAL)")
        self.accept_button.setAccessibleName("Accept contact request")
        self.refuse_button = QPushButton("Re&fuse")
        self.refuse_button.setToolTip("Drop the request; the peer stays a stranger")
        self.refuse_button.setAccessibleName("Refuse contact request")
        self.accept_button.clicked.connect(lambda: self._answer(self.accept_requested))
        self.refuse_button.clicked.connect(lambda: self._answer(self.refuse_requested))
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.refuse_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.set_requests([])

    def set_requests(self, requests: list[dict]) -> None:
        selected = self.selected()
        self.list.clear()
        for request in requests:
            name = request["name"] or request["peer"][:12]
            item = QListWidgetItem(f"{name}: “{request['text']}”")   # list items are plain text
            item.setData(REQUEST_ROLE, request["peer"])
            item.setToolTip(f"{name}\nid: {request['peer']}\n{request['text']}")
            self.list.addItem(item)
            if request["peer"] == selected:
                self.list.setCurrentItem(item)
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)
        self.title.setText(f"Contact requests ({len(requests)})")
        self.setVisible(bool(requests))
        self._selection()

    def selected(self) -> str | None:
        item = self.list.currentItem()
        return item.data(REQUEST_ROLE) if item is not None else None

    def _selection(self, *_) -> None:
        for button in (self.accept_button, self.refuse_button):
            button.setEnabled(self.selected() is not None)

    def _answer(self, signal) -> None:
        peer = self.selected()
        if peer is not None:
            signal.emit(peer)


class RequestDialog(QDialog):
    """Ask a connected stranger to chat: one short line (``submitted(peer, text)``)."""

    submitted = Signal(str, str)

    def __init__(self, strangers: list[dict], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Send a contact request")
        self.peer = QComboBox()
        self.peer.setAccessibleName("Peer to ask")
        self.peer.setToolTip("Connected peers you do not chat with yet")
        for peer in strangers:
            self.peer.addItem(f"{peer['name'] or '(unnamed)'} · {peer['id'][:12]}", peer["id"])
        self.text = QLineEdit()
        self.text.setMaxLength(MAX_REQUEST_TEXT)
        self.text.setPlaceholderText("Hi, it's Ann from the lab")
        self.text.setAccessibleName("Request text")
        self.text.setToolTip(f"One line, at most {MAX_REQUEST_TEXT} characters: tell them who you are")
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        hint = QLabel("A peer you do not chat with can only receive one short line from you, "
                      "until it accepts." if strangers else
                      "No connected peer to ask: every connected peer may already chat with you.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.send_button = self.buttons.addButton("Send request", QDialogButtonBox.AcceptRole)
        self.send_button.setObjectName("primary")
        self.send_button.setAccessibleName("Send contact request")
        self.send_button.setToolTip("Send the line to the peer; it sees it under Contact requests")
        self.send_button.setEnabled(False)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        self.text.textChanged.connect(self._changed)
        self.text.returnPressed.connect(self._submit)
        form = QFormLayout()
        form.addRow("&Peer:", self.peer)
        form.addRow("&Message:", self.text)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(440, self.sizeHint().height())

    def _changed(self) -> None:
        self.send_button.setEnabled(bool(self.text.text().strip()) and self.peer.count() > 0)

    def _submit(self) -> None:
        if self.send_button.isEnabled():
            self.error.hide()
            self.submitted.emit(self.peer.currentData(), self.text.text().strip())

    def set_busy(self, busy: bool) -> None:
        for widget in (self.send_button, self.text, self.peer):
            widget.setEnabled(not busy)
        if not busy:
            self._changed()
            self.text.setFocus()

    def show_refusal(self, reason: str) -> None:
        self.error.setText(reason)
        self.error.show()
