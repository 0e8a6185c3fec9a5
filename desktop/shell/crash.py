"""An unexpected exception is logged and shown with the log file's path, not a silent exit.

Two doors lead here: ``sys.excepthook`` (an exception in a Qt slot or handler) and the
asyncio loop's exception handler (a task nobody awaited, a failing callback). One dialog at a
time: while it is open, further errors are only logged.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

log = logging.getLogger("covey.desktop.crash")
# Not bugs of ours: the peer or the network went away, or a task was cancelled on shutdown.
EXPECTED = (asyncio.CancelledError, ConnectionError, KeyboardInterrupt)


class CrashReporter(QObject):
    """Installs the two hooks; ``dialog`` is the message box on screen, if any."""

    def __init__(self, log_file: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.log_file = Path(log_file)
        self.dialog: QMessageBox | None = None
        self.shown = 0
        self._previous_hook = None

    def install(self) -> None:
        """Take over ``sys.excepthook`` (``uninstall`` gives it back)."""
        if self._previous_hook is None:
            self._previous_hook = sys.excepthook
            sys.excepthook = self.excepthook

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take over ``loop``'s exception handler too."""
        loop.set_exception_handler(self.loop_exception)

    def uninstall(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            self._previous_hook = None
        if loop is not None:
            loop.set_exception_handler(None)

    def excepthook(self, kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        log.critical("unexpected error: %s", value, exc_info=(kind, value, tb))
        self.show(value)

    def loop_exception(self, loop, context: dict) -> None:
        exc = context.get("exception")
        message = context.get("message", "error in the event loop")
        if exc is None or isinstance(exc, EXPECTED):
            log.warning("event loop: %s%s", message, f" ({exc!r})" if exc else "")
            return
        log.error("unexpected error in the event loop: %s", message,
                  exc_info=(type(exc), exc, exc.__traceback__))
        self.show(exc)

    def show(self, exc: BaseException) -> None:
        """The dialog a person sees: what happened in one line and where the details are."""
        if self.dialog is not None and self.dialog.isVisible():
            return
        self.shown += 1
        box = QMessageBox(QMessageBox.Critical, "Covey: unexpected error",
                          "Covey hit an unexpected error and may not work as it should.")
        box.setObjectName("crashDialog")
        box.setInformativeText(f"{type(exc).__name__}: {exc}\n\nThe details are in the log file:\n"
                               f"{self.log_file}\n\nIf it happens again, restart Covey.")
        folder = box.addButton("Open log folder", QMessageBox.ActionRole)
        box.addButton(QMessageBox.Close)
        box.setDefaultButton(QMessageBox.Close)
        folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_file.parent))))
        self.dialog = box
        box.open()
