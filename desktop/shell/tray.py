"""Closing the window: keep the node running in the system tray, or quit.

:class:`CloseDialog` asks (with "Don't ask again"); :class:`Tray` is the icon with Show and Quit.
Where there is no system tray the window just quits (the log says why).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QLabel, QMenu, QSystemTrayIcon,
                               QVBoxLayout, QWidget)

from desktop.style import app_icon


class CloseDialog(QDialog):
    """Keep running in the tray, or quit? ``chosen`` carries "tray" or "quit" and whether to remember."""

    chosen = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("closeDialog")
        self.setWindowTitle("Close Covey")
        self.setWindowModality(Qt.WindowModal)
        text = QLabel("Keep the node running in the system tray? Peers can still reach it, chats "
                      "arrive and training goes on. Quit stops the node.")
        text.setWordWrap(True)
        self.remember = QCheckBox("&Don't ask again")
        self.remember.setToolTip("Remember this answer; the close button will do the same next time")
        self.buttons = QDialogButtonBox()
        self.keep = self.buttons.addButton("&Keep running in tray", QDialogButtonBox.AcceptRole)
        self.quit = self.buttons.addButton("&Quit", QDialogButtonBox.DestructiveRole)
        self.cancel = self.buttons.addButton(QDialogButtonBox.Cancel)
        self.keep.setDefault(True)
        self.keep.setToolTip("Hide the window; the tray icon brings it back")
        self.quit.setToolTip("Stop the node and close Covey")
        self.keep.clicked.connect(lambda: self._choose("tray"))
        self.quit.clicked.connect(lambda: self._choose("quit"))
        self.cancel.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.remember)
        layout.addWidget(self.buttons)

    def _choose(self, choice: str) -> None:
        self.accept()
        self.chosen.emit(choice, self.remember.isChecked())


class Tray(QSystemTrayIcon):
    """The tray icon of a hidden window: a click or Show brings it back, Quit stops the node."""

    show_requested = Signal()
    quit_requested = Signal()

    def __init__(self, tooltip: str, parent=None):
        super().__init__(app_icon(), parent)
        self.setToolTip(tooltip)
        self.menu = QMenu()
        self.show_action = QAction("&Show Covey", self.menu)
        self.quit_action = QAction("&Quit", self.menu)
        self.menu.addAction(self.show_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.setContextMenu(self.menu)
        self.show_action.triggered.connect(self.show_requested)
        self.quit_action.triggered.connect(self.quit_requested)
        self.activated.connect(self._activated)

    def _activated(self, reason) -> None:
        if reason in (QSystemTrayIcon.Trigger, QSystemTrayIcon.DoubleClick):
            self.show_requested.emit()


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()
