"""The open conversation: who, how it is protected, its timer, the messages and the message box.

The view only draws and asks: its signals (``send_requested``, ``typing_changed``,
``timer_chosen``, ``safety_requested``, ``close_requested``, ``file_requested``,
``file_action``, ``members_requested``, ``leave_requested``, ``invite_answered``)
are turned into service calls by the panel. A group conversation hides what only
a pair has (safety number, timer, files) and shows its members; a group the
person left or was removed from is shown read-only with why.
"""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QLabel, QListView, QPlainTextEdit,
                               QPushButton, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget)

from core.chat.protocol import TIMERS

from .elided import ElidedLabel
from .file_row import FileCard
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
    file_requested = Signal()
    file_action = Signal(str, str)        # ("accept" | "decline" | "cancel", file id)
    members_requested = Signal()
    leave_requested = Signal()
    invite_answered = Signal(bool)        # True: accept the group invitation; False: decline it
    dismiss_requested = Signal()          # drop a group we are no longer in from the list

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

        self.title = ElidedLabel()                 # names come from the network: plain text, cut with "…"
        self.title.setObjectName("chatTitle")
        self.title.setStyleSheet("font-weight: bold; font-size: 12pt;")
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
        self.members = QLabel()
        self.members.setObjectName("caption")
        self.members.setTextFormat(Qt.PlainText)     # member names come from the network
        self.members.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.members.setAccessibleName("Group members")
        self.members_button = QPushButton("&Members…")
        self.members_button.setToolTip("Who is in this group (every member sees the same list); its creator "
                                       "adds and removes members here")
        self.members_button.setAccessibleName("Group members")
        self.members_button.clicked.connect(self.members_requested)
        self.leave_button = QPushButton("&Leave group")
        self.leave_button.setObjectName("danger")
        self.leave_button.setToolTip("Leave the group: its messages are wiped here and you get none of the "
                                     "later ones (the creator leaving closes it for everyone)")
        self.leave_button.setAccessibleName("Leave group")
        self.leave_button.clicked.connect(self.leave_requested)

        self.notice = QFrame()                       # an invitation to answer, or why a group is read-only
        self.notice.setObjectName("infoBanner")
        self.notice.setStyleSheet("#infoBanner { background: #fff8e1; border: 1px solid #f0d58c; "
                                  "border-radius: 6px; }")
        self.notice_text = QLabel()
        self.notice_text.setTextFormat(Qt.PlainText)
        self.notice_text.setWordWrap(True)
        self.notice_text.setAccessibleName("Group notice")
        self.stay_button = QPushButton("Acce&pt")
        self.stay_button.setObjectName("primary")
        self.stay_button.setToolTip("Join the group: its creator adds you, every member sees you in the member "
                                    "list, and you see the messages written from then on")
        self.stay_button.setAccessibleName("Accept the group invitation")
        self.stay_button.clicked.connect(lambda: self.invite_answered.emit(True))
        self.decline_button = QPushButton("&Decline")
        self.decline_button.setToolTip("Refuse the invitation: it is forgotten here and its creator is told")
        self.decline_button.setAccessibleName("Decline the group invitation")
        self.decline_button.clicked.connect(lambda: self.invite_answered.emit(False))
        self.dismiss_button = QPushButton("Remo&ve from list")
        self.dismiss_button.setToolTip("Forget this group here: it leaves the contacts list")
        self.dismiss_button.setAccessibleName("Remove the group from the list")
        self.dismiss_button.clicked.connect(self.dismiss_requested)
        notice_layout = QHBoxLayout(self.notice)
        notice_layout.setContentsMargins(8, 4, 8, 4)
        notice_layout.addWidget(self.notice_text, 1)
        notice_layout.addWidget(self.stay_button)
        notice_layout.addWidget(self.decline_button)
        notice_layout.addWidget(self.dismiss_button)
        self.notice.hide()

        self.list = QListView()
        self.list.setModel(model)
        self.delegate = MessageDelegate(model, self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setLayoutMode(QListView.Batched)     # 10,000 rows: laid out in batches, never at once
        self.list.setBatchSize(200)     # a batch costs a few ms: scrolling stays smooth while it lays out
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.list.setAccessibleName("Messages")
        self.list.setStyleSheet("QListView { background: #f8f9fb; border: 1px solid #d9dce1; border-radius: 6px; }")
        self.list.setMinimumHeight(120)
        model.rowsInserted.connect(self._scroll_if_at_end)
        model.rowsInserted.connect(self._attach_cards)
        model.modelReset.connect(self._attach_cards)

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
        self.file_button = QPushButton("Fil&e…")
        self.file_button.setToolTip("Send a file: choose it, and it goes end-to-end encrypted, piece by piece, "
                                    "once the contact accepts it (in a group: to each member who accepts it)")
        self.file_button.setAccessibleName("Send a file")
        self.file_button.clicked.connect(self.file_requested)
        self.note = QLabel(EPHEMERAL_NOTE)
        self.note.setObjectName("caption")
        self.note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.verified)
        top.addWidget(self.safety_button)
        top.addWidget(self.close_button)
        top.addWidget(self.members_button)
        top.addWidget(self.leave_button)
        state = QHBoxLayout()
        state.addWidget(self.online)
        state.addWidget(self.e2e, 1)
        self.timer_label = timer_label
        controls = QHBoxLayout()
        controls.addWidget(timer_label)
        controls.addWidget(self.timer)
        controls.addWidget(self.timer_by, 1)
        buttons = QVBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.send_button)
        compose = QHBoxLayout()
        compose.addWidget(self.box, 1)
        compose.addLayout(buttons)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(state)
        layout.addWidget(self.members)
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
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
        self.group = False
        for widget in (self.members, self.members_button, self.leave_button):
            widget.hide()                  # one-to-one until ``open(..., group=True)``

    # -- what the panel shows ----------------------------------------------------------------
    def open(self, name: str, group: bool = False) -> None:
        """Show the conversation page for ``name`` (the rows come from the model); ``group``: a group's."""
        self.setCurrentIndex(1)
        self.group = group
        self.title.setText(name)
        self.title.setToolTip(name)
        for widget in (self.verified, self.safety_button, self.close_button, self.timer_label, self.timer,
                       self.timer_by, self.online):
            widget.setVisible(not group)
        for widget in (self.members, self.members_button, self.leave_button):
            widget.setVisible(group)
        self.file_button.setVisible(True)
        self.banner.hide()
        self.notice.hide()
        self.set_read_only(False)
        self.typing.setText(" ")
        self.box.clear()
        self.list.scrollToBottom()
        self.update_countdown()

    def show_group(self, view: dict) -> None:
        """A group's members (the creator's signed list, the same for every member) and protection."""
        names = [view["names"].get(m) or m[:12] for m in view["members"]]
        creator = view["names"].get(view["creator"]) or view["creator"][:12]
        invited = [view["names"].get(m) or m[:12] for m in view.get("invited") or []]
        text = (f"{len(names)} member{'s' if len(names) != 1 else ''}: {', '.join(names)} · created by {creator}"
                + (f" · invited, not answered yet: {', '.join(invited)}" if invited else ""))
        self.members.setText(text)
        self.members.setToolTip(text)
        self.members_button.setText(f"&Members ({len(names)})…")
        self.e2e.setText("End-to-end encrypted · each member gets its own copy over its own session")
        self.e2e.setToolTip("A group message goes to each member over the pairwise encrypted session with "
                            "it; someone who left or was removed gets none of the later ones")

    def show_invitation(self, text: str, members: str, answer: bool) -> None:
        """An invitation to a group we are not in: what it is and who is in it, Accept and Decline
        (``answer``; else we accepted and wait); nothing can be written yet."""
        self._notice(text, answer=answer)
        self.set_read_only(True)
        self.box.setPlaceholderText("Accept the invitation to write in this group")
        for widget in (self.members_button, self.leave_button, self.file_button):
            widget.setVisible(False)
        self.members.setVisible(True)
        self.members.setText(members)
        self.members.setToolTip(members)
        self.e2e.setText("Not joined: nothing of this group is shown here or sent from here until you accept")
        self.e2e.setToolTip("You are invited, not a member: the group's messages are refused until you join")

    def show_departed(self, text: str) -> None:
        """The person left the group, was removed, or it was closed: read-only, saying why."""
        self._notice(text, answer=False)
        self.set_read_only(True)
        for widget in (self.members_button, self.leave_button, self.members, self.file_button):
            widget.setVisible(False)
        self.e2e.setText("This group is closed here: nothing more is sent to you or from you")

    def _notice(self, text: str | None, answer: bool) -> None:
        self.notice_text.setText(text or "")
        self.notice.setVisible(bool(text))
        self.stay_button.setVisible(answer)
        self.decline_button.setVisible(answer)
        self.dismiss_button.setVisible(bool(text) and not answer)

    def set_read_only(self, read_only: bool) -> None:
        for widget in (self.box, self.send_button):
            widget.setEnabled(not read_only)
        self.box.setPlaceholderText("You can no longer write here" if read_only else
                                    "Write a message (Enter sends, Shift+Enter: new line)")

    def update_file(self, view: dict, note: str | None = None) -> bool:
        """A transfer moved on: its row and card redraw; False when it is not shown here."""
        if not self.model.update_file(view, note):
            return False
        card = self.card(str(view["id"]))
        if card is not None:
            card.show_view(view, self.model.rows[self.model.file_row(str(view["id"]))].note)
        return True

    def card(self, file_id: str) -> FileCard | None:
        row = self.model.file_row(file_id)
        widget = self.list.indexWidget(self.model.index(row)) if row >= 0 else None
        return widget if isinstance(widget, FileCard) else None

    def _attach_cards(self, parent=QModelIndex(), first: int = 0, last: int | None = None) -> None:
        """Give each file row without one its card (rows inserted, or the model reset)."""
        rows = self.model.rows
        last = len(rows) - 1 if last is None else last
        for i in range(max(0, first), min(last, len(rows) - 1) + 1):
            row = rows[i]
            if row.kind != "file" or row.file is None:
                continue
            index = self.model.index(i)
            if isinstance(self.list.indexWidget(index), FileCard):
                continue
            card = FileCard(row.file, row.note)
            card.accept_requested.connect(lambda fid: self.file_action.emit("accept", fid))
            card.decline_requested.connect(lambda fid: self.file_action.emit("decline", fid))
            card.cancel_requested.connect(lambda fid: self.file_action.emit("cancel", fid))
            self.list.setIndexWidget(index, card)

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
