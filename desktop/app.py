"""`covey` with a display: the desktop app around an embedded node."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from core import logs
from core.app.client import call
from core.app.runtime import Runtime
from core.errors import CoveyError, human

from .shell.crash import CrashReporter
from .shell.logfile import add_log_file, log_path, remove_log_file
from .shell.shown import FirstPaint
from .shell.single import SingleInstance, ask_running_app
from .startup import ask_name_dialog, ask_passphrase_dialog, open_node
from .style import app_icon, style_sheet
from .window import MainWindow

log = logging.getLogger("covey.desktop")
STOP_DEADLINE = 3.0


class Session:
    """One running node (with its control API: ``core.app.runtime``) and its window."""

    def __init__(self, node):
        self.node = node
        self.runtime = Runtime(node)
        self.window: MainWindow | None = None
        self.closed = asyncio.Event()

    async def open(self) -> None:
        """Start the node and the control API, then show the window."""
        await self.runtime.start()
        self.window = MainWindow(self.node)
        self.window.closed.connect(self.closed.set)
        FirstPaint(self.window)
        self.window.show()

    def bring_to_front(self) -> None:
        """Another launch with this home asked to see the window."""
        if self.window is not None:
            self.window.bring_to_front()

    async def close(self) -> None:
        """Stop the control API and the node (bounded: closing must not hang)."""
        await self.runtime.stop(STOP_DEADLINE)

    async def run(self) -> str | None:
        """Open, wait for the window to close, close. Returns an error for the user, or None."""
        try:
            await self.open()
        except Exception as exc:  # shown in a dialog once the loop has ended
            log.warning("could not start: %s", exc)
            return human(exc)
        await self.closed.wait()
        await self.close()
        return None


def _quit_on_signals(app: QApplication, session: Session) -> QSocketNotifier:
    """Ctrl-C / SIGTERM quit (Qt would otherwise swallow them): no close question, no tray."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())

    def close(*_):
        if session.window is not None:
            QTimer.singleShot(0, session.window.quit)
        else:
            session.closed.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Read, app)
    notifier.activated.connect(lambda *_: reader.recv(64))
    notifier._sockets = (reader, writer)  # keep them open as long as the notifier lives
    return notifier


def make_app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Covey")
    app.setDesktopFileName("covey")
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    app.setQuitOnLastWindowClosed(False)   # the session decides when to stop
    return app


def main(home: Path, overrides: dict, passphrase: bytes | None) -> int:
    """Run the desktop app until the user quits; returns the exit code."""
    logs.setup("info")
    app = make_app()
    home = Path(home)
    instance = SingleInstance(home)
    try:
        claimed = instance.claim()
    except OSError as exc:
        QMessageBox.critical(None, "Covey", f"Covey cannot use the data folder {home}:\n\n{human(exc)}")
        return 1
    if not claimed:
        if ask_running_app(home):
            log.info("Covey already runs with %s: its window was raised", home)
            return 0
        QMessageBox.critical(None, "Covey", f"Another Covey app is using the data folder {home}, "
                             "but it does not answer. Close it (or end its process), then try again.")
        return 1
    try:
        return _run(app, home, overrides, passphrase, instance)
    finally:
        instance.release()


def _run(app: QApplication, home: Path, overrides: dict, passphrase: bytes | None,
         instance: SingleInstance) -> int:
    busy = running_elsewhere(home)
    if busy:
        QMessageBox.critical(None, "Covey", busy)
        return 1
    log_file = add_log_file(home)
    crash = CrashReporter(log_path(home))
    crash.install()
    try:
        try:
            node = open_node(home, overrides, passphrase, ask_name_dialog, ask_passphrase_dialog(home))
        except Exception as exc:
            log.warning("cannot open %s: %s", home, exc)
            QMessageBox.critical(None, "Covey", f"Covey cannot open {home}:\n\n{human(exc)}")
            return 1
        if node is None:
            return 1
        logs.log_events(node.events)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        crash.watch(loop)
        with loop:
            session = Session(node)
            instance.raise_requested.connect(session.bring_to_front)
            notifier = _quit_on_signals(app, session)
            error = loop.run_until_complete(session.run())
            notifier.setEnabled(False)
        if error:
            QMessageBox.critical(None, "Covey", f"Covey could not start:\n\n{error}\n\n"
                                 f"The log file is {log_path(home)}")
            return 1
        log.info("quit")
        return 0
    finally:
        crash.uninstall()
        remove_log_file(log_file)


def running_elsewhere(home: Path) -> str | None:
    """Why this home cannot be opened because its node already runs (``covey --headless``,
    say), or None. A control.json left by a crash does not count (the client checks the pid)."""
    try:
        info = call(home, "id", {}, timeout=5.0)
    except CoveyError:
        return None
    return (f"The node of the data folder {home} is already running (process {info.get('pid', '?')}, "
            "without a window). Stop it first, or choose another data folder.")
