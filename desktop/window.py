"""The main window, built from the panel registry (``tabs.PANELS``): a banner across the top,
then the tabs."""
from __future__ import annotations

import logging

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QMainWindow, QStatusBar, QTabWidget, QVBoxLayout, QWidget

from . import tabs
from .bridge import EventBridge
from .shell.shell import Shell
from .style import app_icon
from .tabs import TAB, TOP

log = logging.getLogger("covey.desktop.window")
STATUS_MS = 8000
ERROR_MS = 15000
REMEMBERED_FORMS = ("training_panel",)   # panels whose ``form`` keeps its fields between runs


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
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(10, 10, 10, 6)
        for panel, widget in built:
            if panel.place == TOP:
                layout.addWidget(widget)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.setStatusBar(QStatusBar())

        for panel, widget in built:
            if panel.place == TAB:
                self.add_tab(widget, panel.title)
            else:
                self.bridge.register(widget)
            if hasattr(widget, "status"):
                widget.status.connect(self.show_status)
            if hasattr(widget, "failed"):
                widget.failed.connect(self.show_error)
        # the shell: menus, status fields, remembered state (the training form too), closing
        self.shell = Shell(self, node, self.tabs, {
            key: getattr(self, key).form for key in REMEMBERED_FORMS if getattr(self, key, None) is not None})
        self.bridge.register(self.shell.status)
        self.bridge.register(self)
        self.peer_count, self.mode_label = self.shell.status.peers, self.shell.status.mode

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

    # -- node events -------------------------------------------------------------------
    def on_event_node_stopping(self, event) -> None:
        self.bridge.close()   # the store closes next; nothing may read it any more

    def on_event_error(self, event) -> None:
        message = event.data.get("message")
        if message:
            self.show_error(str(message))

    # -- closing --------------------------------------------------------------------------
    def quit(self) -> None:
        """Stop the node and end the app (no close question)."""
        self.shell.quit()

    def bring_to_front(self) -> None:
        self.shell.bring_to_front()

    def closeEvent(self, event) -> None:
        if not self.shell.may_close():   # to the tray, or the close question is on screen
            event.ignore()
            return
        self.bridge.close()
        self.closed.emit()
        super().closeEvent(event)
