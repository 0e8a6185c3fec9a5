"""The main window, built from the panel registry (``tabs.PANELS``): a banner across the top,
the tabs, and a left column only when a panel asks for one (the selected peer's details)."""
from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFrame, QLabel, QMainWindow, QScrollArea, QSplitter, QStatusBar, QTabWidget, QVBoxLayout,
                               QWidget)

from . import tabs
from .bridge import EventBridge
from .style import app_icon
from .tabs import LEFT, TAB, TOP

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
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)

        built = []
        for panel in tabs.PANELS:
            widget = panel.build(node)
            setattr(self, panel.key, widget)
            if widget is not None:
                built.append((panel, widget))
        top = [w for p, w in built if p.place == TOP]
        # a tab may bring a panel for the left column (the peers tab: the selected peer's details)
        left = [w for p, w in built if p.place == LEFT] + [
            w.sidebar for p, w in built if p.place == TAB and getattr(w, "sidebar", None) is not None]

        column = QWidget()
        left_layout = QVBoxLayout(column)
        left_layout.setContentsMargins(0, 0, 0, 0)
        for widget in left:
            left_layout.addWidget(widget)
        left_layout.addStretch(1)
        column.setMinimumWidth(400)
        scroll = QScrollArea()   # small screens: the left column scrolls rather than squeezes
        scroll.setWidget(column)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(420)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        scroll.setVisible(bool(left))   # a left column only when some panel asks for one
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(10, 10, 10, 6)
        for widget in top:
            layout.addWidget(widget)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

        self.peer_count = QLabel()
        self.peer_count.setObjectName("peerCount")
        self.mode_label = QLabel()
        self.setStatusBar(QStatusBar())
        self.statusBar().addPermanentWidget(self.mode_label)
        self.statusBar().addPermanentWidget(self.peer_count)

        for panel, widget in built:
            if panel.place == TAB:
                self.add_tab(widget, panel.title)
            else:
                self.bridge.register(widget)
            if hasattr(widget, "status"):
                widget.status.connect(self.show_status)
            if hasattr(widget, "failed"):
                widget.failed.connect(self.show_error)
        self.bridge.register(self)
        self.peers_panel.count_changed.connect(self._show_count)
        self._show_count(self.peers_panel.model.connected_count())
        self._show_mode()

    def add_tab(self, widget: QWidget, title: str) -> None:
        """Show ``widget`` as a tab; it receives node events in its ``on_event_<name>`` methods."""
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
