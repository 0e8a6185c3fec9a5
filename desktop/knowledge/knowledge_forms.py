"""The publish form and the details of one packet (with its signature check) of the Knowledge tab."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from core.knowledge.protocol import MAX_TAG, MAX_TAGS, MAX_TITLE

from ..style import grouped, mono_font, named
from .knowledge_model import TIER_TEXT, size_text, when_text


class PublishBox(QGroupBox):
    """Title, kind, tags and a text, or a file: emits what the user asked to publish."""

    publish_text = Signal(dict)    # {"text", "title", "kind", "tags"}
    publish_file = Signal(dict)    # {"title", "kind", "tags"}: the panel asks for the file

    def __init__(self, parent=None):
        super().__init__("Publish", parent)
        self.title = named(QLineEdit(), "Title", "A short title peers see in their list")
        self.title.setMaxLength(MAX_TITLE)
        self.title.setPlaceholderText("A short title")
        self.kind = named(QLineEdit("note"), "Kind",
                          "What it is: letters, digits, '.', '_' or '-' (note, model, dataset, ...)")
        self.kind.setMaxLength(32)
        self.tags = named(QLineEdit(), "Tags", f"At most {MAX_TAGS} tags, separated by commas")
        self.tags.setMaxLength(MAX_TAGS * (MAX_TAG + 2))
        self.tags.setPlaceholderText("tags, separated by commas")
        self.text = named(QPlainTextEdit(), "Text to publish",
                          "The text to sign and send; or leave it empty and publish a file")
        self.text.setPlaceholderText("Text to share with your trusted peers, signed by this node")
        self.text.setMinimumHeight(70)
        self.text_button = named(QPushButton("Publish text"), "Publish text",
                                 "Sign the text and send it to your CORE peers")
        self.text_button.setObjectName("primary")
        self.file_button = named(QPushButton("Publish file…"), "Publish a file",
                                 "Choose a file of at most 16 MiB, sign it and send it to your CORE peers")
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setTextFormat(Qt.PlainText)
        self.error.hide()
        form = QFormLayout()
        form.addRow("Title", self.title)
        form.addRow("Kind", self.kind)
        form.addRow("Tags", self.tags)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.text_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.text_button.clicked.connect(self._text_clicked)
        self.file_button.clicked.connect(lambda: self.publish_file.emit(self.fields()))

    def fields(self) -> dict:
        return {"title": self.title.text().strip(), "kind": self.kind.text().strip() or "note",
                "tags": [t.strip() for t in self.tags.text().split(",") if t.strip()]}

    def _text_clicked(self) -> None:
        text = self.text.toPlainText()
        if not text.strip():
            self.show_refusal("Write a text first, or publish a file")
            return
        self.publish_text.emit({**self.fields(), "text": text})

    def set_busy(self, busy: bool) -> None:
        for widget in (self.text_button, self.file_button):
            widget.setEnabled(not busy)
        if busy:
            self.error.hide()

    def show_refusal(self, reason: str) -> None:
        self.error.setText(reason)
        self.error.show()

    def published(self) -> None:
        """Clear the form for the next one (the kind stays: people publish runs of one kind)."""
        self.title.clear()
        self.tags.clear()
        self.text.clear()
        self.error.hide()


class DetailsBox(QGroupBox):
    """One packet: who signed it, the result of checking the signature again, its text; Export."""

    export_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__("Details", parent)
        self.packet_id: str | None = None
        self.heading = QLabel("Select a packet to see who signed it and check its signature.")
        self.heading.setObjectName("hint")
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.PlainText)
        self.signature = QLabel()
        self.signature.setWordWrap(True)
        self.signature.setTextFormat(Qt.PlainText)
        self.signature.hide()
        self.facts = QLabel()
        self.facts.setObjectName("mono")
        self.facts.setFont(mono_font())
        self.facts.setTextFormat(Qt.PlainText)
        self.facts.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.preview = named(QPlainTextEdit(), "Packet text", "The text of the selected packet")
        self.preview.setReadOnly(True)
        self.preview.setMinimumHeight(40)
        self.preview.hide()
        self.export_button = named(QPushButton("Export…"), "Export the packet",
                                   "Save this packet's file or text to a file of your choice")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self.packet_id and self.export_requested.emit(self.packet_id))
        content = QWidget()   # a short window scrolls the details rather than cutting the facts
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.heading)
        inner.addWidget(self.signature)
        inner.addWidget(self.facts)
        inner.addWidget(self.preview, 1)
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.export_button)
        layout.addLayout(row)

    def show_packet(self, view: dict, author_name: str) -> None:
        """Render ``knowledge.show()``: the signature check first, then the facts and the text."""
        self.packet_id = view["id"]
        self.heading.setObjectName("")
        self.heading.setText(view["title"] or view.get("filename") or "(untitled)")
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        if view["verified"]:
            self.signature.setObjectName("")
            self.signature.setText(f"✓ Signature valid: signed by {author_name} with the key "
                                   f"{view.get('fingerprint', '')} (checked again from the stored bytes)")
        else:
            self.signature.setObjectName("error")
            self.signature.setText(f"✗ Signature check failed: {view.get('problem')}")
        self._repolish(self.signature)
        self._repolish(self.heading)
        self.signature.show()
        file = f"  ({view['filename']}, {view['media_type']})" if view.get("filename") else ""
        came = TIER_TEXT.get(view["tier"], view["tier"])
        if view.get("received_from"):
            came += f" peer {view['received_from'][:16]}"
        lines = [f"id       {grouped(view['id'], 16, 2).replace(chr(10), chr(10) + ' ' * 9)}",
                 f"author   {grouped(view['author'], 16, 2).replace(chr(10), chr(10) + ' ' * 9)}",
                 f"sequence {view['seq']}    kind {view['kind']}",
                 f"created  {when_text(view['created'])}",
                 f"size     {size_text(view['size'])}{file}",
                 f"tags     {', '.join(view['tags']) or '-'}",
                 f"from     {came}"]
        self.facts.setText("\n".join(lines))
        text = view.get("text")
        self.preview.setVisible(text is not None)
        self.preview.setPlainText(text or "")
        self.export_button.setEnabled(bool(view["verified"]))

    def clear(self) -> None:
        self.packet_id = None
        self.heading.setText("Select a packet to see who signed it and check its signature.")
        self.signature.hide()
        self.facts.clear()
        self.preview.hide()
        self.export_button.setEnabled(False)

    @staticmethod
    def _repolish(widget) -> None:
        widget.style().unpolish(widget)
        widget.style().polish(widget)
