"""The Encryption tab: the modes and the network key, and the live sessions with their mode."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from .crypto_panel import CryptoPanel
from .sessions_box import SessionsBox


class EncryptionPanel(QScrollArea):
    """The tab: :class:`CryptoPanel` above :class:`SessionsBox`, fed by the node's events."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.modes = CryptoPanel(node)
        self.sessions = SessionsBox(node)
        self.modes.status.connect(self.status)
        self.modes.failed.connect(self.failed)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.modes)
        layout.addWidget(self.sessions, 1)
        self.setWidget(body)
        self.setWidgetResizable(True)

    def on_event_settings_changed(self, event) -> None:
        self.modes.refresh()
        self.sessions.redraw.request()

    def on_event_peer_connected(self, event) -> None:
        self.sessions.redraw.request()

    on_event_peer_disconnected = on_event_peer_connected
