"""The open conversation: who, how it is protected, its timer, the messages and the message box.

The view only draws and asks: its signals (``send_requested``, ``typing_changed``,
``timer_chosen``, ``safety_requested``, ``close_requested``) are turned into
service calls by the panel.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QLabel, QListView, QPlainTextEdit,
                               QPushButton, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget)

from core.chat.protocol import TIMERS

from .message_delegate import MessageDelegate
from .messages_model import MessagesModel

TIMER_LABELS = {"off": "Off", "30s": "30 s", "5m": "5 min", "1h": "1 hour", "1d": "1 day"}
TYPING_IDLE_MS = 5000        # after this long without a key, we tell the peer we stopped typing
COUNTDOWN_MS = 1000
EPHEMERAL_NOTE = ("Messages are kept in memory only and never written to disk. "
                  "Restarting the node starts new sessions: its conversations are gone.")


class MessageBox(QPlainTextEdit):
    """The message being written: Enter sends, Shift+Enter starts a new line."""

    submitted = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("Write a message (Enter sends, Shift+Enter: new line)")
        self.setTabChangesFocus(True)
        self.setAccessibleName("Message")
        self.setToolTip("Enter sends the message; Shift+Enter starts a new line")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier:
            self.submitted.emit()
            return
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            self.insertPlainText("\n")
            return
        super().keyPressEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().lineSpacing() * 3 + 14)


class ConversationView(QStackedWidget):
    """A placeholder until a contact is picked, then the conversation with it."""

    send_requested = Signal(str)
    typing_changed = Signal(bool)
    timer_chosen = Signal(str)
    safety_requested = Signal()
    close_requested = Signal()

    def __init__(self, model: MessagesModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.placeholder = QLabel("Pick a contact on the left to start a conversation.")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setObjectName("hint")
        self.addWidget(self.placeholder)
        page = QWidget()
        self.addWidget(page)

        self.title = QLabel()
        self.title.setObjectName("chatTitle")
        self.title.setTextFormat(Qt.PlainText)     # names come from the network
        self.title.setStyleSheet("font-weight: bold; font-size: 12pt;")
        self.title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.verified = QLabel("✓ verified")
        self.verified.setStyleSheet("color: #2e7d32; font-weight: bold;")
        self.verified.setToolTip("You compared the safety number with this contact and marked it verified")
        self.online = QLabel()
        self.online.setObjectName("caption")
        self.e2e = QLabel()
        self.e2e.setObjectName("caption")
        self.e2e.setWordWrap(True)

        self.banner = QFrame()
        self.banner.setObjectName("dangerBanner")
        self.banner_text = QLabel()
        self.banner_text.setTextFormat(Qt.PlainText)
        self.banner_text.setWordWrap(True)
        self.banner_text.setStyleSheet("font-weight: bold;")
        QVBoxLayout(self.banner).addWidget(self.banner_text)
        self.banner.hide()

        self.timer = QComboBox()
        for name in TIMERS:
            self.timer.addItem(TIMER_LABELS.get(name, name), name)
        self.timer.setToolTip("Disappearing messages: after this long both sides delete each new message")
        self.timer.setAccessibleName("Disappearing messages timer")
        self.timer.activated.connect(lambda i: self.timer_chosen.emit(self.timer.itemData(i)))
        timer_label = QLabel("&Disappear after:")
        timer_label.setBuddy(self.timer)
        self.timer_by = QLabel()
        self.timer_by.setObjectName("caption")
        self.safety_button = QPushButton("Safety &number")
        self.safety_button.setToolTip("Compare the safety number (60 digits or a QR code) with this contact "
                                      "in person, then mark it verified")
        self.safety_button.setAccessibleName("Safety number")
        self.safety_button.clicked.connect(self.safety_requested)
        self.close_button = QPushButton("C&lose")
        self.close_button.setObjectName("danger")
        self.close_button.setToolTip("Close the conversation: its messages are wiped here and on the contact's node")
        self.close_button.setAccessibleName("Close conversation")
        self.close_button.clicked.connect(self.close_requested)

        self.list = QListView()
        self.list.setModel(model)
        self.delegate = MessageDelegate(model, self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setLayoutMode(QListView.Batched)     # 10,000 rows: laid out in batches, never at once
        self.list.setBatchSize(500)
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.list.setAccessibleName("Messages")
        self.list.setStyleSheet("QListView { background: #f8f9fb; border: 1px solid #d9dce1; border-radius: 6px; }")
        self.list.setMinimumHeight(120)
        model.rowsInserted.connect(self._scroll_if_at_end)

        self.typing = QLabel(" ")
        self.typing.setObjectName("caption")
        self.typing.setTextFormat(Qt.PlainText)
        self.typing.setAccessibleName("Typing indicator")
        self.box = MessageBox()
        self.box.submitted.connect(self._submit)
        self.box.textChanged.connect(self._typed)
        self.send_button = QPushButton("&Send")
        self.send_button.setObjectName("primary")
        self.send_button.setToolTip("Send the message (Enter)")
        self.send_button.setAccessibleName("Send message")
        self.send_button.clicked.connect(self._submit)
        self.note = QLabel(EPHEMERAL_NOTE)
        self.note.setObjectName("caption")
        self.note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.verified)
        top.addWidget(self.safety_button)
        top.addWidget(self.close_button)
        state = QHBoxLayout()
        state.addWidget(self.online)
        state.addWidget(self.e2e, 1)
        controls = QHBoxLayout()
        controls.addWidget(timer_label)
        controls.addWidget(self.timer)
        controls.addWidget(self.timer_by, 1)
        compose = QHBoxLayout()
        compose.addWidget(self.box, 1)
        compose.addWidget(self.send_button, 0, Qt.AlignBottom)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(state)
        layout.addWidget(self.banner)
        layout.addLayout(controls)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.typing)
        layout.addLayout(compose)
        layout.addWidget(self.note)

        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(TYPING_IDLE_MS)
        self._idle.timeout.connect(lambda: self.typing_changed.emit(False))
        self._tick = QTimer(self)               # redraws the countdowns while some message will expire
        self._tick.setInterval(COUNTDOWN_MS)
        self._tick.timeout.connect(self.list.viewport().update)

    # -- what the panel shows ----------------------------------------------------------------
    def open(self, name: str) -> None:
        """Show the conversation page for ``name`` (the rows come from the model)."""
        self.setCurrentIndex(1)
        self.title.setText(name)
        self.title.setToolTip(name)
        self.banner.hide()
        self.typing.setText(" ")
        self.box.clear()
        self.list.scrollToBottom()
        self.update_countdown()

    def close_view(self) -> None:
        self.setCurrentIndex(0)
        self._tick.stop()

    def show_summary(self, summary: dict, transport_mode: str | None) -> None:
        """Online state, verification, encryption and the timer, from ``service.conversation``."""
        self.verified.setVisible(bool(summary["verified"]))
        self.online.setText("● online ·" if summary["connected"] else "○ offline ·")
        self.online.setStyleSheet("color: #2e7d32;" if summary["connected"] else "color: #6b7383;")
        self.online.setToolTip("connected now" if summary["connected"] else
                               "not connected: what you send waits in memory until it connects")
        carrier = f"transport: {transport_mode}" if transport_mode else "messages wait until it connects"
        if summary["encrypted"]:
            self.e2e.setText(f"End-to-end encrypted · double ratchet · {carrier}")
        else:
            self.e2e.setText(f"End-to-end encrypted from the first message · {carrier}")
        self.e2e.setToolTip("Only you and this contact can read these messages (X3DH key agreement, then a "
                            "double ratchet: a new key per message); the connection and any relay see "
                            "ciphertext only")
        self.show_timer(summary["timer"], summary["timer_set_by"])
        self.show_typing(summary["name"] or summary["peer"][:12], summary["typing"])

    def show_timer(self, timer: str, by: str | None) -> None:
        self.timer.setCurrentIndex(max(0, self.timer.findData(timer)))
        if timer == "off":
            self.timer_by.setText("")
        else:
            self.timer_by.setText("set by you" if by == "me" else "set by them" if by == "peer" else "")

    def show_typing(self, name: str, typing: bool) -> None:
        self.typing.setText(f"{name} is typing…" if typing else " ")

    def show_key_changed(self, text: str | None) -> None:
        self.banner_text.setText(text or "")
        self.banner.setVisible(bool(text))

    def update_countdown(self) -> None:
        """Run the one-second redraw only while a shown message has a timer."""
        if self.currentIndex() == 1 and self.model.expiring():
            if not self._tick.isActive():
                self._tick.start()
        else:
            self._tick.stop()

    def not_sent(self, text: str) -> None:
        """Put back a message that could not be sent (unless something new was written meanwhile)."""
        if not self.box.toPlainText().strip():
            self.box.setPlainText(text)
            self.box.moveCursor(QTextCursor.End)

    # -- internals ------------------------------------------------------------------------------
    def _submit(self) -> None:
        text = self.box.toPlainText().strip()
        if text:
            self._idle.stop()       # the message itself ends the peer's indicator
            self.box.clear()        # the next one can be written while this one goes out
            self.send_requested.emit(text)

    def _typed(self) -> None:
        if self.box.toPlainText().strip():
            self.typing_changed.emit(True)
            self._idle.start()
        elif self._idle.isActive():
            self._idle.stop()
            self.typing_changed.emit(False)

    def _scroll_if_at_end(self, *_) -> None:
        bar = self.list.verticalScrollBar()
        if bar.value() >= bar.maximum() - 40:
            QTimer.singleShot(0, self.list.scrollToBottom)
        self.update_countdown()
