"""`covey --headless`: run a node until SIGINT/SIGTERM, then stop cleanly."""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from core import logs
from core.app.control import ControlServer
from core.identity import Identity
from core.node import Node

log = logging.getLogger("covey.headless")
STOP_DEADLINE = 2.0


async def serve(home: Path, overrides: dict, passphrase: bytes | None, *, ready=None) -> None:
    """Start a node and its control API; return after a signal and a clean stop."""
    home.mkdir(parents=True, exist_ok=True)
    if not Identity.exists(home):
        identity = Identity.generate(overrides.get("name") or "")
        identity.save(home, passphrase)
        log.info("created identity %s", identity.id)
    node = Node.open(home, overrides, passphrase)
    logs.log_events(node.events)
    await node.start()
    control = ControlServer(node)
    try:
        await control.start()
    except BaseException:
        await node.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = node.info()
    log.info("node running", extra={"fields": {"id": info["id"], "listen": info["listen"],
                                                "control": f"http://127.0.0.1:{control.port}"}})
    if ready is not None:
        ready(node)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        try:
            await asyncio.wait_for(_shutdown(node, control), STOP_DEADLINE)
        except asyncio.TimeoutError:
            log.warning("shutdown took longer than %.0f s; exiting anyway", STOP_DEADLINE)
        log.info("stopped")


async def _shutdown(node: Node, control: ControlServer) -> None:
    await control.stop()
    await node.stop()


def run(home: Path, overrides: dict, passphrase: bytes | None, level: str = "info") -> int:
    logs.setup(level)
    asyncio.run(serve(home, overrides, passphrase))
    return 0
