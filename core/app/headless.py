"""`covey --headless`: run a node until SIGINT/SIGTERM, then stop cleanly."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from core import logs
from core.errors import BadRequest
from core.app.runtime import Runtime

log = logging.getLogger("covey.headless")
STOP_DEADLINE = 2.0
DESKTOP_LOCK = "desktop.lock"   # the desktop app's lock on its home (desktop/shell/single.py)


def desktop_holder(home: Path) -> int | None:
    """The pid of a live desktop app that holds ``home``, else None. Its lock file (a Qt
    QLockFile) names the holder's pid on its first line; a crashed app's file names a
    process that is gone, and does not count."""
    try:
        pid = int((home / DESKTOP_LOCK).read_text(errors="replace").splitlines()[0].strip())
    except (OSError, IndexError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:   # alive, another user's
        return pid
    return pid


async def serve(home: Path, overrides: dict, passphrase: bytes | None, *, ready=None) -> None:
    """Start a node and its control API; return after a signal and a clean stop."""
    holder = desktop_holder(home)
    if holder is not None:
        raise BadRequest(f"the Covey app (pid {holder}) runs the node of {home}: quit it first, "
                         f"or start this node with another home")
    runtime = Runtime.open(home, overrides, passphrase, create_as=overrides.get("name") or "")
    node = runtime.node
    logs.log_events(node.events)
    control = await runtime.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = node.info()
    log.info("node running", extra={"fields": {"id": info["id"], "listen": info["listen"],
                                                "control": control.endpoint}})
    if ready is not None:
        ready(node)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runtime.stop(STOP_DEADLINE)
        log.info("stopped")


def run(home: Path, overrides: dict, passphrase: bytes | None, level: str = "info", *,
        exit_process: bool = False) -> int:
    """Serve until a signal. With ``exit_process`` (the `covey --headless` process) the process
    ends right after the clean stop: the database is closed and the logs are flushed by then,
    and the interpreter's own teardown (a garbage collection over every loaded module, 0.3-1 s
    on a busy machine) would only delay `cluster down` and container stops."""
    logs.setup(level)
    asyncio.run(serve(home, overrides, passphrase))
    if exit_process:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
