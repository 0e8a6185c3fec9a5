"""One node with its control API, opened, started and stopped together.

`covey --headless` (:mod:`core.app.headless`) and the desktop app
(``desktop.app.Session``) both run a node through :class:`Runtime`, so the
order of starting and stopping (and the bound on how long stopping may take)
is written once.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core.app.control import ControlServer
from core.node import Node

log = logging.getLogger("covey.runtime")


class Runtime:
    """A node and the control API that serves it to `covey` commands from other processes."""

    def __init__(self, node: Node):
        self.node = node
        self.control: ControlServer | None = None

    @classmethod
    def open(cls, home: Path, overrides: dict, passphrase: bytes | None,
             create_as: str | None = None) -> "Runtime":
        """The node of ``home`` (settings checked first; with ``create_as`` an identity of that
        name is created when the home has none). Blocking (key derivation): call it before
        the event loop serves anything else."""
        return cls(Node.open(home, overrides, passphrase, create_as=create_as))

    async def start(self) -> ControlServer:
        """Start the node, then its control API (the node is stopped again if that fails);
        returns the control API."""
        await self.node.start()
        control = ControlServer(self.node)
        try:
            await control.start()
        except BaseException:
            await self.node.stop()
            raise
        self.control = control
        return control

    async def stop(self, deadline: float) -> bool:
        """Stop the control API, then the node, within ``deadline`` seconds (closing must
        not hang); False when it took longer and was left behind."""
        try:
            await asyncio.wait_for(self._stop(), deadline)
            return True
        except asyncio.TimeoutError:
            log.warning("shutdown took longer than %.0f s; exiting anyway", deadline)
            return False

    async def _stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        await self.node.stop()
