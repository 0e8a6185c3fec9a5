"""Structured logging: one JSON line per record on stderr."""
from __future__ import annotations

import json
import logging
import sys
import time


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        extra = getattr(record, "fields", None)
        if extra:
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# Events never logged: chat activity (who talks to whom, when, typing) is ephemeral like the
# messages themselves, whose text no event carries anyway (the GUI reads it from the service).
UNLOGGED_PREFIXES = ("chat_",)


def log_events(bus) -> None:
    """Log every core event as one structured line (except chat activity)."""
    log = logging.getLogger("covey.event")

    def write(event) -> None:
        if event.name.startswith(UNLOGGED_PREFIXES):
            return
        log.info(event.name, extra={"fields": {"event": event.name, **event.data}})

    bus.on(None, write)
