"""Log the moment the window is first painted: how long after the process started, and whether
torch was imported by then (it must not be: bench/gui_launch.py reads this line)."""
from __future__ import annotations

import logging
import os
import sys
import time

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QWidget

log = logging.getLogger("covey.desktop.shown")
SHOWN = "window shown"


def process_age() -> float | None:
    """Seconds since this process was started, from the kernel's start time in clock ticks
    since boot (Linux); None elsewhere (psutil's create_time is only whole-second exact)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class FirstPaint(QObject):
    """Logs ``window shown`` once, at the window's first paint, then removes itself."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window
        window.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if watched is self._window and event.type() == QEvent.Paint:
            self._window.removeEventFilter(self)
            age = process_age()
            log.info(SHOWN, extra={"fields": {"seconds": None if age is None else round(age, 3),
                                               "cpu_seconds": round(time.process_time(), 3),
                                               "torch_imported": "torch" in sys.modules}})
        return False
