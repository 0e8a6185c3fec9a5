"""This node's identity: name, fingerprint, id (with a copy button), listen addresses."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from .style import mono_font


def grouped(text: str, size: int, per_line: int) -> str:
    """``text`` in groups of ``size`` characters, ``per_line`` groups per line."""
    groups = [text[i:i + size] for i in range(0, len(text), size)]
    return "\n".join(" ".join(groups[i:i + per_line]) for i in range(0, len(groups), per_line))


class IdentityPanel(QGroupBox):
    """Shows who this node is; the fingerprint is what people compare out of band."""

    status = Signal(str)

    def __init__(self, node, parent=None):
        super().__init__("This node", parent)
        self.node = node
        self.name = QLabel()
        self.name.setObjectName("nodeName")
        self.name.setIndent(0)
        self.fingerprint = QLabel()
        self.fingerprint.setObjectName("fingerprint")
        self.fingerprint.setFont(mono_font(13))
        self.id_label = QLabel()
        self.id_label.setFont(mono_font(9))
        self.id_label.setObjectName("peerId")
        self.copy_button = QPushButton("Copy ID")
        self.copy_button.setToolTip("Copy the full id (64 hex digits) for `covey peers add --key`")
        self.copy_button.clicked.connect(self.copy_id)
        self.listen = QLabel()
        self.listen.setObjectName("listen")
        self.listen.setFont(mono_font(9))
        for label in (self.name, self.fingerprint, self.id_label, self.listen):
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setTextFormat(Qt.PlainText)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.addWidget(_caption("Fingerprint"), 0, 0, Qt.AlignTop)
        grid.addWidget(self.fingerprint, 0, 1)
        grid.addWidget(_caption("ID"), 1, 0, Qt.AlignTop)
        id_row = QHBoxLayout()
        id_row.addWidget(self.id_label, 1)
        id_row.addWidget(self.copy_button, 0, Qt.AlignTop)
        grid.addLayout(id_row, 1, 1)
        grid.addWidget(_caption("Listening"), 2, 0, Qt.AlignTop)
        grid.addWidget(self.listen, 2, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.name)
        layout.addLayout(grid)
        self.refresh()

    def refresh(self) -> None:
        info = self.node.info()
        self.name.setText(info["name"] or "(unnamed node)")
        self.fingerprint.setText(grouped(info["fingerprint"].replace(" ", ""), 4, 4))
        self.fingerprint.setToolTip(info["fingerprint"])
        self.id_label.setText(grouped(info["id"], 8, 4))
        self.id_label.setToolTip(info["id"])
        addresses = list(info["listen"]) + ([info["onion"]] if info.get("onion") else [])
        self.listen.setText("\n".join(addresses) or "not listening")

    def copy_id(self) -> None:
        QGuiApplication.clipboard().setText(self.node.identity.id)
        self.status.emit("ID copied to the clipboard")

    def on_event_node_started(self, event) -> None:
        self.refresh()

    on_event_settings_changed = on_event_node_started


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("caption")
    return label
