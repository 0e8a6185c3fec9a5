"""The main window: identity and encryption on the left, peers on the right."""
from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFrame, QLabel, QMainWindow, QScrollArea, QSplitter, QStatusBar, QTabWidget, QVBoxLayout,
                               QWidget)

from .bridge import EventBridge
from .crypto_panel import CryptoPanel, SecurityBanner
from .identity_panel import IdentityPanel
from .peers_panel import PeersPanel
from .style import app_icon
from .training_panel import TrainingPanel

log = logging.getLogger("covey.desktop.window")
STATUS_MS = 8000
ERROR_MS = 15000


class MainWindow(QMainWindow):
    """Renders one node; ``closed`` fires when the user closes the window."""

    closed = Signal()

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.setWindowTitle(f"Covey — {node.identity.name or node.identity.id[:12]}")
        self.setWindowIcon(app_icon())
        self.resize(1200, 800)
        self.bridge = EventBridge(node.events, self)

        self.banner = SecurityBanner(node)
        self.identity_panel = IdentityPanel(node)
        self.crypto_panel = CryptoPanel(node)
        self.peers_panel = PeersPanel(node)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.peers_panel, "Peers")

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.identity_panel)
        left_layout.addWidget(self.crypto_panel)
        left_layout.addWidget(self.peers_panel.details)
        left_layout.addStretch(1)
        left.setMinimumWidth(400)
        scroll = QScrollArea()   # small screens: the left column scrolls rather than squeezes
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(420)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(10, 10, 10, 6)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

        self.peer_count = QLabel()
        self.peer_count.setObjectName("peerCount")
        self.mode_label = QLabel()
        self.setStatusBar(QStatusBar())
        self.statusBar().addPermanentWidget(self.mode_label)
        self.statusBar().addPermanentWidget(self.peer_count)

        for panel in (self.banner, self.identity_panel, self.crypto_panel, self.peers_panel, self):
            self.bridge.register(panel)
        for panel in (self.identity_panel, self.crypto_panel, self.peers_panel):
            panel.status.connect(self.show_status)
        for panel in (self.crypto_panel, self.peers_panel):
            panel.failed.connect(self.show_error)
        self.peers_panel.count_changed.connect(self._show_count)
        self._show_count(self.peers_panel.model.connected_count())
        self._show_mode()
        self.training_panel = None
        if getattr(node, "learning", None) is not None:
            self.training_panel = TrainingPanel(node)
            self.add_tab(self.training_panel, "Training")
            self.training_panel.status.connect(self.show_status)
            self.training_panel.failed.connect(self.show_error)

    def add_tab(self, widget: QWidget, title: str) -> None:
        """Room for later panels (chat, learning); they register with ``self.bridge``."""
        self.tabs.addTab(widget, title)
        self.bridge.register(widget)

    # -- status bar ----------------------------------------------------------------
    def show_status(self, text: str) -> None:
        self.statusBar().setProperty("error", False)
        self._restyle()
        self.statusBar().showMessage(text, STATUS_MS)

    def show_error(self, text: str) -> None:
        log.info("shown to the user: %s", text)
        self.statusBar().setProperty("error", True)
        self._restyle()
        self.statusBar().showMessage(text, ERROR_MS)
        QTimer.singleShot(ERROR_MS, self._clear_error_style)

    def _clear_error_style(self) -> None:
        if not self.statusBar().currentMessage():
            self.statusBar().setProperty("error", False)
            self._restyle()

    def _restyle(self) -> None:
        self.statusBar().style().unpolish(self.statusBar())
        self.statusBar().style().polish(self.statusBar())

    def _show_count(self, connected: int) -> None:
        self.peer_count.setText(f"{connected} peer{'s' if connected != 1 else ''} connected")

    def _show_mode(self) -> None:
        view = self.node.crypto_view()
        self.mode_label.setText(f"Encryption: {view['mode']} (min {view['min']})")
        self.mode_label.setProperty("danger", view["min"] == "none")
        self.mode_label.style().unpolish(self.mode_label)
        self.mode_label.style().polish(self.mode_label)

    # -- node events -------------------------------------------------------------------
    def on_event_settings_changed(self, event) -> None:
        self._show_mode()

    def on_event_node_stopping(self, event) -> None:
        self.bridge.close()   # the store closes next; nothing may read it any more

    def on_event_error(self, event) -> None:
        message = event.data.get("message")
        if message:
            self.show_error(str(message))

    # -- closing --------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        self.bridge.close()
        self.closed.emit()
        super().closeEvent(event)
