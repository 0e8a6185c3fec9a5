"""A file transfer inside a conversation: its name, size, progress bar, state and buttons.

One :class:`FileCard` per file row of the message list (an index widget: a
conversation holds at most a few dozen files, the 10,000 text rows stay
painted by the delegate). The card only draws and asks; the panel turns its
signals into ``chat.files`` calls. The file's name came from the network: it
is shown as plain text.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from .elided import ElidedLabel
from .messages_model import file_state_text, percent, size_text

CARD_HEIGHT = 104          # the row's height in the message list (uniform for every file row)
CARD_FRACTION = 0.78       # as wide as a message bubble at most
ACTIVE = ("offered", "transferring", "saving")


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.PlainText)
    return label


class FileCard(QWidget):
    """See the module docstring; ``file_id`` is the transfer's id (hex)."""

    accept_requested = Signal(str)
    decline_requested = Signal(str)
    cancel_requested = Signal(str)

    def __init__(self, view: dict, note: str = "", parent=None):
        super().__init__(parent)
        self.file_id = str(view["id"])
        self.outgoing = view["direction"] == "out"
        self.setAutoFillBackground(False)
        self.frame = QFrame()
        self.frame.setObjectName("fileCard")
        self.frame.setStyleSheet("#fileCard { background: %s; border: 1px solid #d9dce1; border-radius: 8px; }"
                                 % ("#dbe7fb" if self.outgoing else "#ffffff"))
        self.frame.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.title = ElidedLabel()              # the name came from the network
        self.title.setStyleSheet("font-weight: bold;")
        self.size = _plain()
        self.size.setObjectName("caption")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.setMaximumHeight(16)
        self.progress.setAccessibleName("Transfer progress")
        self.progress.setToolTip("How much of the file has arrived (checked chunk by chunk)")
        self.state = ElidedLabel()
        self.state.setObjectName("caption")
        self.accept_button = QPushButton("Save…")
        self.accept_button.setObjectName("primary")
        self.accept_button.setToolTip("Accept the file and choose where to save it; it is checked piece by "
                                      "piece as it arrives")
        self.accept_button.setAccessibleName("Accept file and choose where to save it")
        self.decline_button = QPushButton("Decline")
        self.decline_button.setToolTip("Refuse the file: nothing is transferred")
        self.decline_button.setAccessibleName("Decline file")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the transfer; a partly received file is removed")
        self.cancel_button.setAccessibleName("Cancel file transfer")
        self.accept_button.clicked.connect(lambda: self.accept_requested.emit(self.file_id))
        self.decline_button.clicked.connect(lambda: self.decline_requested.emit(self.file_id))
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self.file_id))

        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.size)
        foot = QHBoxLayout()
        foot.addWidget(self.state, 1)
        for button in (self.accept_button, self.decline_button, self.cancel_button):
            foot.addWidget(button)
        inner = QVBoxLayout(self.frame)
        inner.setAlignment(Qt.AlignTop)
        inner.setContentsMargins(8, 5, 8, 5)
        inner.setSpacing(3)
        inner.addLayout(head)
        inner.addWidget(self.progress)
        inner.addLayout(foot)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 4)
        if self.outgoing:
            outer.addStretch(22)
        outer.addWidget(self.frame, 78)
        if not self.outgoing:
            outer.addStretch(22)
        self.show_view(view, note)

    def show_view(self, view: dict, note: str = "") -> None:
        """Redraw from a transfer view (``chat.files`` ``view()``, updated by ``chat_file`` events)."""
        name = str(view.get("name") or "")
        self.title.setText(name)
        self.title.setToolTip(name)
        self.size.setText(size_text(int(view.get("size") or 0)))
        state = str(view.get("state"))
        self.progress.setValue(percent(view))
        self.progress.setVisible(state != "offered")
        words = file_state_text(view)
        if note and state in ("transferring", "saving", "done"):
            words += f" · {note}"
        self.state.setText(words)
        self.state.setToolTip(words)
        self.state.setStyleSheet("color: #b71c1c;" if state == "failed" else "")
        offered_to_me = state == "offered" and not self.outgoing
        self.accept_button.setVisible(offered_to_me)
        self.decline_button.setVisible(offered_to_me)
        self.cancel_button.setVisible(state in ACTIVE and not offered_to_me)
        self.setAccessibleName(f"File {name}, {words}")

    def set_busy(self, busy: bool) -> None:
        for button in (self.accept_button, self.decline_button, self.cancel_button):
            button.setEnabled(not busy)
