"""One desktop app per home: a second launch raises the running window instead of opening
the same identity twice.

The first app of a home holds ``desktop.lock`` in it (QLockFile: a lock left by a crashed
app is taken over, since its pid is gone) and listens on a local socket named after the
home's path. A later launch fails to take the lock, connects, sends ``raise`` and exits.
The listening socket is removed and made anew by the lock's holder, so a socket file left
behind by a crash never blocks a launch.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from core.files import private_dir

log = logging.getLogger("covey.desktop.single")
LOCK_FILE = "desktop.lock"
RAISE = b"raise\n"
ANSWER = b"ok\n"
MAX_REQUEST = 64          # bytes a client may send before it is dropped
CONNECT_MS = 3000         # how long a second launch tries to reach the first one
REQUEST_MS = 2000         # how long a client may take to send its request
MAX_CLIENTS = 4           # connections served at once; more are dropped


def server_name(home: Path) -> str:
    """The local socket's name for ``home`` (same home, same name; per user)."""
    digest = hashlib.sha256(os.fsencode(Path(home).resolve())).hexdigest()[:20]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return f"covey-{uid}-{digest}"


class SingleInstance(QObject):
    """The claim of one app on one home; ``raise_requested`` fires when another launch asks."""

    raise_requested = Signal()

    def __init__(self, home: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.home = Path(home)
        self.name = server_name(self.home)
        self._lock: QLockFile | None = None
        self.server: QLocalServer | None = None
        self._clients: set[QLocalSocket] = set()

    def claim(self) -> bool:
        """Take the home (True), or learn that another app holds it (False)."""
        private_dir(self.home)
        lock = QLockFile(str(self.home / LOCK_FILE))
        lock.setStaleLockTime(0)       # stale only when its process is gone, never by age
        if not lock.tryLock(0):
            log.info("another Covey app holds %s (%s)", self.home, lock.error())
            return False
        self._lock = lock
        QLocalServer.removeServer(self.name)   # a socket file a crashed app left behind
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.UserAccessOption)
        if not server.listen(self.name):
            log.warning("single-instance socket %s: %s", self.name, server.errorString())
        server.newConnection.connect(self._accept)
        self.server = server
        return True

    def release(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None

    def _accept(self) -> None:
        while self.server is not None and self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            if len(self._clients) >= MAX_CLIENTS:
                sock.abort()
                sock.deleteLater()
                continue
            self._clients.add(sock)
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))
            QTimer.singleShot(REQUEST_MS, sock, sock.abort)   # a silent client does not stay
            if sock.bytesAvailable():   # arrived before readyRead was connected
                self._read(sock)

    def _drop(self, sock: QLocalSocket) -> None:
        self._clients.discard(sock)
        sock.deleteLater()

    def _read(self, sock: QLocalSocket) -> None:
        data = bytes(sock.peek(MAX_REQUEST + 1))
        if len(data) > MAX_REQUEST or (b"\n" in data and data.split(b"\n")[0] + b"\n" != RAISE):
            log.info("single-instance socket: refused a request of %d bytes", len(data))
            sock.abort()
            return
        if b"\n" not in data:
            return   # wait for the rest of the line
        sock.readAll()
        sock.write(ANSWER)
        sock.flush()
        sock.disconnectFromServer()
        log.info("another launch asked to show this window")
        self.raise_requested.emit()


def ask_running_app(home: Path, timeout_ms: int = CONNECT_MS) -> bool:
    """Ask the app that holds ``home`` to show its window; True when it answered. Blocking:
    called before the event loop runs. Retries while the other app may still be opening."""
    deadline = time.monotonic() + timeout_ms / 1000
    sock = QLocalSocket()
    while True:
        sock.connectToServer(server_name(home))
        if sock.waitForConnected(timeout_ms):
            break
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    sock.write(RAISE)
    sock.waitForBytesWritten(timeout_ms)
    answer = b""
    while ANSWER not in answer and len(answer) <= MAX_REQUEST and time.monotonic() < deadline + timeout_ms / 1000:
        # the answer may have come in already (while the request was being written)
        if not sock.bytesAvailable() and not sock.waitForReadyRead(100):
            if sock.state() != QLocalSocket.ConnectedState and not sock.bytesAvailable():
                break
            continue
        answer += bytes(sock.readAll())
    sock.abort()
    return answer.startswith(ANSWER)
