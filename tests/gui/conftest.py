"""GUI test fixtures: offscreen Qt, one qasync loop per test, real nodes on 127.0.0.1."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from core.config import Settings  # noqa: E402
from core.identity import Identity  # noqa: E402
from core.node import Node  # noqa: E402
from tests.gui.loop import qt_asyncio_loop  # noqa: E402



@pytest.fixture
def qloop(qapp):
    """A qasync loop sharing the Qt event loop that qtbot drives (tests/gui/loop.py)."""
    from desktop.style import style_sheet
    qapp.setStyleSheet(style_sheet())
    with qt_asyncio_loop(qapp) as loop:
        yield loop


@pytest.fixture
def run(qloop, qtbot):
    """Run a coroutine on the shared loop until it is done; return its result."""
    def run(coro, timeout_ms: int = 20000):
        task = asyncio.ensure_future(coro)
        qtbot.waitUntil(task.done, timeout=timeout_ms)
        return task.result()
    return run


@pytest.fixture
def make_node(tmp_path, run):
    """Start real nodes on tmp homes (no discovery); all are stopped after the test."""
    started: list[Node] = []

    def make(name: str, **settings) -> Node:
        home = tmp_path / name
        identity = Identity.generate(name)
        identity.save(home)
        settings = {"listen": "127.0.0.1:0", "discovery": False, **settings}
        node = Node(home, identity, Settings(**settings))
        run(node.start())
        started.append(node)
        return node

    yield make
    for node in reversed(started):
        run(node.stop())


@pytest.fixture
def window(make_node, qtbot):
    """The main window of a running node named 'alice'."""
    from desktop.window import MainWindow
    node = make_node("alice")
    win = MainWindow(node)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def address_of():
    """The loopback address a node listens on."""
    return lambda node: f"127.0.0.1:{node.transport.port}"


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go for a human to look at ($COVEY_GUI_ARTIFACTS or /tmp/covey-gui-artifacts)."""
    path = Path(os.environ.get("COVEY_GUI_ARTIFACTS", "/tmp/covey-gui-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
