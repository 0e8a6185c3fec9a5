"""Dialogs of the peers panel: add a peer."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QVBoxLayout)

from core.contact_link import looks_like_link, parse_contact_link
from core.errors import BadRequest

from ..style import mono_font


def dropped_link(mime: QMimeData) -> str | None:
    """The contact link a drag carries (as text or as a URL), or None."""
    texts = [mime.text()] if mime.hasText() else []
    texts += [url.toString() for url in mime.urls()[:1]]
    return next((t for t in texts if looks_like_link(t)), None)


class AddPeerDialog(QDialog):
    """Asks for an address, an optional key to pin and an optional name.

    It does not connect by itself: ``submitted`` carries the user's intent and
    the caller reports back with :meth:`set_busy`, :meth:`show_error` or ``accept()``.
    """

    submitted = Signal(str, object, object)   # address, key | None, name | None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add peer")
        self.setMinimumWidth(520)
        self.address = QLineEdit(placeholderText="host:port, e.g. 192.168.1.20:8102, or a covey:// contact link")
        self.key = QLineEdit(placeholderText="optional: the peer's id (64 hex digits) to pin")
        self.name = QLineEdit(placeholderText="optional: a name you will recognise")
        self.key.setFont(mono_font())
        form = QFormLayout()
        form.addRow("&Address", self.address)
        form.addRow("&Key", self.key)
        form.addRow("&Name", self.name)
        hint = QLabel("With a key, the connection is refused unless the peer proves it holds that "
                      "identity. Without one, the first key seen is pinned; compare fingerprints "
                      "out of band before raising its tier.")
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        self.error = QLabel()
        self.error.setTextFormat(Qt.PlainText)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.add_button = self.buttons.button(QDialogButtonBox.Ok)
        self.add_button.setText("Add and connect")
        self.add_button.setEnabled(False)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        self.address.textChanged.connect(self._changed)
        self.setAcceptDrops(True)              # a contact link dropped anywhere on the dialog
        for field in (self.address, self.key, self.name):
            field.installEventFilter(self)     # ... or on a field (which would insert it as text)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.add_button.setDefault(True)   # Enter in a field submits (set once the button is in the dialog)
        _describe(self)

    def _changed(self) -> None:
        self.error.hide()
        if looks_like_link(self.address.text()):   # a contact link pasted or typed into the address
            self.use_link(self.address.text())
        self.add_button.setEnabled(bool(self.address.text().strip()) and not looks_like_link(self.address.text()))

    def use_link(self, text: str) -> bool:
        """Fill the address and the key from a contact link; say what is wrong with a bad one."""
        try:
            link = parse_contact_link(text)
        except BadRequest as exc:   # said, without moving the cursor: the person may still be typing it
            self.error.setText(f"That contact link cannot be used: {exc}")
            self.error.show()
            return False
        self.key.setText(link.peer_id)
        self.address.setText(link.address)
        self.address.setFocus(Qt.OtherFocusReason)
        return True

    def dragEnterEvent(self, event) -> None:
        if dropped_link(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        link = dropped_link(event.mimeData())
        if link is not None:
            self.use_link(link)
            event.acceptProposedAction()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.DragEnter, QEvent.DragMove, QEvent.Drop) and dropped_link(event.mimeData()):
            if event.type() == QEvent.Drop:
                self.dropEvent(event)
            else:
                event.acceptProposedAction()
            return True
        return super().eventFilter(watched, event)

    def _submit(self) -> None:
        address = self.address.text().strip()
        if not address:
            return
        self.error.hide()
        self.submitted.emit(address, self.key.text().strip() or None, self.name.text().strip() or None)

    def set_busy(self, busy: bool) -> None:
        """Disable input while the node connects (Cancel stays live and cancels the attempt)."""
        for widget in (self.address, self.key, self.name, self.add_button):
            widget.setEnabled(not busy)
        self.add_button.setText("Connecting…" if busy else "Add and connect")

    def show_error(self, text: str, field: QLineEdit | None = None) -> None:
        """Show why the attempt failed and put the cursor in ``field`` (default: the address),
        its text selected, so typing replaces it and Enter submits again."""
        self.error.setText(text)
        self.error.show()
        field = field or self.address
        field.setFocus(Qt.OtherFocusReason)
        field.selectAll()


def _describe(dialog: AddPeerDialog) -> None:
    """Tooltips and accessible names of the dialog's controls."""
    for widget, name, tip in (
            (dialog.address, "Address", "Where the peer listens: host:port, e.g. 192.168.1.20:8102, or paste or drop "
                                        "a covey:// contact link (it fills the key too)"),
            (dialog.key, "Key", "The peer's ID (64 hex digits) as its owner reads it on their node: "
                                "with it, only that peer can be added"),
            (dialog.name, "Name", "A name you will recognise (optional)"),
            (dialog.add_button, "Add and connect", "Connect to the peer and add it to your peers"),
            (dialog.buttons.button(QDialogButtonBox.Cancel), "Cancel",
             "Close without adding (also stops a connection attempt)")):
        widget.setAccessibleName(name)
        widget.setToolTip(tip)
