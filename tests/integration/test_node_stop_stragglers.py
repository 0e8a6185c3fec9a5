"""A stopping node does not wait for good on a task that will not end."""
from __future__ import annotations

import asyncio
import logging

from core import node as node_module


async def test_stop_names_a_task_that_swallows_its_cancellation_and_goes_on(make_node, caplog, monkeypatch):
    monkeypatch.setattr(node_module, "STOP_TASKS_GRACE", 0.5)
    node = await make_node("a")
    release = asyncio.Event()

    async def stubborn() -> None:
        # as a library that catches CancelledError and keeps waiting would
        while not release.is_set():
            try:
                await asyncio.wait_for(release.wait(), 30)
            except asyncio.CancelledError:
                continue

    node._spawn(stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="core.node"):
        await asyncio.wait_for(node.stop(), 15)
    assert "did not end within 0.5 s of the node's stop" in caplog.text
    release.set()
