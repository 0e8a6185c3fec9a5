"""Desktop notifications for chat: a tray balloon if the app has a tray icon, else the taskbar alert.

Privacy: a notification names the sender only ("New message from bob"), never
the text: notification centres keep a history, and lock screens show it.
"""
from __future__ import annotations

import logging

from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

log = logging.getLogger("covey.desktop.chat")
SHOW_MS = 5000


class Notifier:
    """Tells the user something happened while the window is not in front."""

    def __init__(self, widget: QWidget):
        self.widget = widget
        self.tray: QSystemTrayIcon | None = None     # set by whoever owns the app's tray icon

    def _tray(self) -> QSystemTrayIcon | None:
        if self.tray is not None:
            return self.tray
        window = self.widget.window()
        found = [t for t in window.findChildren(QSystemTrayIcon) if t.isVisible()]
        return found[0] if found and QSystemTrayIcon.isSystemTrayAvailable() else None

    def notify(self, title: str, body: str) -> None:
        """Show ``title``/``body`` (callers pass no message text, see the module docstring)."""
        tray = self._tray()
        if tray is not None and tray.supportsMessages():
            tray.showMessage(title, body, QSystemTrayIcon.Information, SHOW_MS)
        else:
            QApplication.alert(self.widget.window())
        log.debug("notified: %s", title)
