"""The shell of one MainWindow: menus, status fields, remembered state and the close policy."""
from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from .menus import build_menus
from .prefs import Prefs
from .status import StatusFields
from .tray import CloseDialog, Tray, tray_available

log = logging.getLogger("covey.desktop.shell")


class Shell(QObject):
    """Attached to ``window`` once its tabs exist; ``forms`` (name -> widget) are remembered."""

    def __init__(self, window: QMainWindow, node, tabs: QTabWidget, forms: dict[str, QWidget],
                 has_tray: Callable[[], bool] = tray_available):
        super().__init__(window)
        self.window, self.node, self.tabs, self.forms = window, node, tabs, forms
        self.has_tray = has_tray
        self.prefs = Prefs(node.home)
        self.status = StatusFields(node)
        window.statusBar().addPermanentWidget(self.status)
        self.menus = build_menus(window, tabs, node.home, self.quit)
        self.tray: Tray | None = None
        self.close_dialog: CloseDialog | None = None
        self.quitting = False
        self.restore()

    # -- remembered state ---------------------------------------------------------------------
    def restore(self) -> None:
        self.prefs.restore_window(self.window, self.tabs)
        for name, form in self.forms.items():
            self.prefs.restore_form(name, form)

    def save(self) -> None:
        self.prefs.save_window(self.window, self.tabs)
        for name, form in self.forms.items():
            self.prefs.save_form(name, form)
        self.prefs.sync()

    # -- closing ------------------------------------------------------------------------------
    def may_close(self) -> bool:
        """Called by the window's closeEvent: True lets it close (and the app quit); otherwise
        the window goes to the tray or the close question is on screen."""
        if not self.quitting:
            if not self.has_tray():
                log.info("no system tray here: closing the window quits")
                self.quitting = True
            else:
                choice = self.prefs.close_choice()
                if choice == "tray":
                    self.to_tray()
                    return False
                if choice is None:
                    self.ask()
                    return False
                self.quitting = True
        self.save()
        if self.tray is not None:
            self.tray.hide()
        return True

    def ask(self) -> None:
        """The close question, window-modal (the event loop keeps running behind it)."""
        if self.close_dialog is not None and self.close_dialog.isVisible():
            return
        dialog = CloseDialog(self.window)
        dialog.chosen.connect(self._chosen)
        self.close_dialog = dialog
        dialog.open()

    def _chosen(self, choice: str, remember: bool) -> None:
        if remember:
            self.prefs.set_close_choice(choice)
            self.prefs.sync()
        if choice == "tray":
            self.to_tray()
        else:
            self.quit()

    def to_tray(self) -> None:
        """Hide the window; the node runs on, the tray icon brings the window back or quits."""
        self.save()
        if self.tray is None:
            self.tray = Tray(self.window.windowTitle(), self)
            self.tray.show_requested.connect(self.bring_to_front)
            self.tray.quit_requested.connect(self.quit)
        self.tray.show()
        self.window.hide()
        self.tray.showMessage("Covey is still running", "The node keeps running here; Quit in this "
                              "icon's menu stops it.", Tray.Information, 5000)

    def bring_to_front(self) -> None:
        """Show the window (from the tray, or because a second launch asked) and raise it."""
        if self.tray is not None:
            self.tray.hide()
        self.window.setWindowState((self.window.windowState() & ~Qt.WindowMinimized) | Qt.WindowActive)
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    def quit(self) -> None:
        """Stop the node and end the app (Ctrl+Q, the tray's Quit, a signal)."""
        self.quitting = True
        if self.close_dialog is not None:
            self.close_dialog.close()
        self.window.close()
