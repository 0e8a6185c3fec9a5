"""Run one user action against the core: disable its control, await the call, say what happened.

Every panel turns clicks into core calls the same way, so the desktop has one
copy of it. A panel has a ``status`` signal (good news) and a ``failed``
signal (a sentence for a person); the window shows both in its status bar.
A failure is never a traceback: :func:`core.errors.human` words it, the same
sentence the CLI and the control API use.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, TypeVar, Union

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from core.errors import CoveyError, human

log = logging.getLogger("covey.desktop.actions")
T = TypeVar("T")
Busy = Union[QWidget, Callable[[bool], None], None]     # a control to disable, or set_busy(True/False)
Success = Union[str, Callable[[Any], "str | None"], None]


class _Action:
    """The parts every action shares; :func:`run_action` and :func:`run_action_now` drive it."""

    def __init__(self, widget, failure: str, busy: Busy, on_error: Callable[[str], Any] | None,
                 error_label: QLabel | None, success: Success):
        self.widget, self.failure, self.busy = widget, failure, busy
        self.on_error, self.error_label, self.success = on_error, error_label, success

    def set_busy(self, busy: bool) -> None:
        if isinstance(self.busy, QWidget):
            if shiboken6.isValid(self.busy):   # the window may have closed while the call ran
                self.busy.setEnabled(not busy)
        elif self.busy is not None:
            self.busy(busy)

    def failed(self, exc: Exception) -> None:
        """Restore the view (``on_error`` gets the reason), then show and announce the failure."""
        if isinstance(exc, (CoveyError, OSError)):
            log.info("%s: %s", self.failure, exc)
        else:   # not a refusal the core words itself: keep the traceback for the log
            log.warning("%s: %s", self.failure, exc, exc_info=exc)
        reason = human(exc)
        message = f"{self.failure}: {reason}"
        if self.on_error is not None:
            self.on_error(reason)
        if self.error_label is not None:
            self.error_label.setText(message)
            self.error_label.show()
        self.widget.failed.emit(message)

    def succeeded(self, result: Any) -> None:
        text = self.success(result) if callable(self.success) else self.success
        if text:
            self.widget.status.emit(text)


async def run_action(widget, call: Awaitable[T], *, failure: str, busy: Busy = None,
                     on_error: Callable[[str], Any] | None = None, error_label: QLabel | None = None,
                     success: Success = None) -> bool:
    """Await ``call`` (a core coroutine) on behalf of ``widget``; True when it succeeded.

    While it runs, ``busy`` is disabled (a widget) or told ``busy(True)``; it is
    restored before anything else happens. On failure ``on_error(reason)`` puts
    the view back, ``error_label`` shows "``failure``: reason" and
    ``widget.failed`` announces it. On success ``success`` (a text, or a function
    of the result that updates the view and returns the text) goes to
    ``widget.status``. Every exception is caught: a failed action never
    crashes the window.
    """
    action = _Action(widget, failure, busy, on_error, error_label, success)
    action.set_busy(True)
    try:
        result = await call
    except Exception as exc:
        action.set_busy(False)
        action.failed(exc)
        return False
    action.set_busy(False)
    action.succeeded(result)
    return True


def run_action_now(widget, call: Callable[[], T], *, failure: str, on_error: Callable[[str], Any] | None = None,
                   error_label: QLabel | None = None, success: Success = None) -> bool:
    """:func:`run_action` for a synchronous core call (one that does not wait: a tier, a flag)."""
    action = _Action(widget, failure, None, on_error, error_label, success)
    try:
        result = call()
    except Exception as exc:
        action.failed(exc)
        return False
    action.succeeded(result)
    return True


def confirm(parent: QWidget, title: str, question: str, detail: str, yes_text: str,
            on_yes: Callable[[], Any]) -> QMessageBox:
    """Ask before something that cannot be undone: a non-blocking warning box with Cancel
    as the default; ``on_yes`` runs only if the person presses the ``yes_text`` button.
    The question is plain text (it may hold peer names)."""
    box = QMessageBox(QMessageBox.Warning, title, question, QMessageBox.Yes | QMessageBox.Cancel, parent)
    box.setTextFormat(Qt.PlainText)
    box.setInformativeText(detail)
    box.setDefaultButton(QMessageBox.Cancel)
    box.button(QMessageBox.Yes).setText(yes_text)
    box.buttonClicked.connect(lambda button: button is box.button(QMessageBox.Yes) and on_yes())
    box.open()
    return box
