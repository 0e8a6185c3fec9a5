"""The log file in the node's home: JSON lines, rotated, so a double-clicked app leaves a trace.

What goes in is what the loggers write at INFO and above (``core.logs.log_events`` leaves chat
activity out, and no event carries message text or a secret: tests/gui/test_shell_logfile.py
checks the file after a chat and a proxy password).
"""
from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from core.files import private_dir
from core.logs import JsonLines

LOG_DIR = "logs"
LOG_FILE = "covey.log"
MAX_BYTES = 1_000_000     # per file
BACKUPS = 3               # covey.log.1 .. .3: at most ~4 MB in all


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files (the first and each one after a rollover) are 0600."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def log_path(home: Path) -> Path:
    """Where the desktop app of ``home`` writes its log."""
    return Path(home) / LOG_DIR / LOG_FILE


def add_log_file(home: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> RotatingFileHandler:
    """Send the root logger's records to the rotated log file of ``home`` too (0600 in a 0700
    folder); returns the handler (``remove_log_file`` takes it off again)."""
    path = log_path(home)
    private_dir(path.parent)
    handler = PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(JsonLines())
    logging.getLogger().addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    """Stop writing to the log file (flushes and closes it)."""
    logging.getLogger().removeHandler(handler)
    handler.close()
