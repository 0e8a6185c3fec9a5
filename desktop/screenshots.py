"""`make screenshots`: every tab of the main window, with real data, to ``docs/screenshots/<tab>.png``.

Three real nodes run on 127.0.0.1 (alice, whose window is drawn, and bob and
carol), trust each other as CORE, train a short federated task, publish
knowledge packets, run tasks on each other and chat; then each tab is drawn
offscreen at 1200x800. Nothing leaves the machine; the homes are temporary.

    python -m desktop.screenshots [OUT_DIR]
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

SIZE = (1200, 800)
OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WAIT_S = 120.0

log = logging.getLogger("covey.screenshots")


def file_name(title: str) -> str:
    """'Training' -> 'training.png' (the tab's title, lowercase)."""
    return title.replace("&", "").strip().lower().replace(" ", "-") + ".png"


async def render(window, out_dir: Path, titles: list[str] | None = None, size=SIZE,
                 settle_s: float = 0.3) -> list[Path]:
    """Draw the window with each tab in front (those in ``titles``, default all) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    window.resize(*size)
    paths = []
    for index in range(window.tabs.count()):
        title = window.tabs.tabText(index)
        if titles is not None and title not in titles:
            continue
        window.tabs.setCurrentIndex(index)
        await asyncio.sleep(settle_s)    # the loop lays the tab out and paints it
        path = out_dir / file_name(title)
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


async def _until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def _step(what: str, call: Awaitable) -> object:
    """One piece of sample data; a failure is logged and the pictures are drawn without it."""
    try:
        return await call
    except Exception as exc:   # a tab whose service changed still gets its picture
        log.warning("screenshots: %s failed: %s", what, exc)
        return None


class Federation:
    """alice, bob and carol on 127.0.0.1, trusting each other as CORE."""

    def __init__(self, root: Path):
        self.root = root
        self.nodes: dict = {}

    async def start(self) -> None:
        from core.config import Settings
        from core.identity import ensure_identity
        from core.node import Node
        for name in ("alice", "bob", "carol"):
            home = self.root / name
            identity, _ = ensure_identity(home, name)
            node = Node(home, identity, Settings(listen="127.0.0.1:0", discovery=False))
            await node.start()
            self.nodes[name] = node
        alice = self.nodes["alice"]
        for name in ("bob", "carol"):
            other = self.nodes[name]
            await alice.add_peer(f"127.0.0.1:{other.transport.port}", name=name)
            await _until(lambda o=other: alice.identity.id in o.connections, f"{name} to connect")
            alice.trust(other.identity.id, "core")
            other.trust(alice.identity.id, "core")
            other.service("learning").auto_join = True

    async def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            await _step("stopping a node", node.stop())

    def __getitem__(self, name: str):
        return self.nodes[name]


async def sample_data(fed: Federation, window) -> None:
    """Fill every service of alice with real activity (each step on its own)."""
    alice, bob, carol = fed["alice"], fed["bob"], fed["carol"]
    learning = alice.service("learning")
    started = await _step("training", learning.start_task(rounds=8, min_clients=2, seed=3, epochs=1))
    if started:
        await _step("training to finish", _until(lambda: learning.tasks[started["task"]].state != "running",
                                                 "the training task"))
    knowledge = alice.service("knowledge")
    published = await _step("publishing", knowledge.publish(
        text="Round 8 of the digits MLP reached 0.93 test accuracy; weights are on the lab share.",
        title="Digits MLP: results", kind="note", tags=["ml", "results"]))
    await _step("publishing", bob.service("knowledge").publish(
        text="Data-sharing rules for the lab: only aggregates leave a node.", title="Lab data rules",
        kind="policy", tags=["lab"]))
    await _step("publishing", carol.service("knowledge").publish(
        text="Reading list: FedAvg, Krum, secure aggregation.", title="Reading list", kind="note",
        tags=["papers"]))
    await _step("knowledge to arrive", _until(lambda: knowledge.status()["packets"] >= 3, "the packets", 20))
    tasks = alice.service("delegation")
    await _step("an echo task", tasks.run(bob.identity.id, "echo", {"text": "hello from alice"}))
    await _step("a digest task", tasks.run(carol.identity.id, "dataset.digest", {"dataset": "digits"}))
    alice.trust(bob.identity.id, "core")
    await _step("a served task", bob.service("delegation").run(alice.identity.id, "bench.probe", {"ms": 20}))
    if alice.has_service("chat"):
        await _step("chat", _chat(alice, bob))
    await _show_chat(window, "bob")
    await _select_peer(window, bob.identity.id)
    _select_rows(window, published)


def _select_rows(window, published) -> None:
    """A row selected in the lists, so their details show (what a person looks at)."""
    knowledge = getattr(window, "knowledge_panel", None)
    if knowledge is not None and published:
        knowledge.reload()
        knowledge.select_packet(published["id"])
    network = getattr(window, "network_panel", None)
    if network is not None and hasattr(network, "socks_radio"):   # the SOCKS5 form, typed but not applied
        network.socks_radio.setChecked(True)
        network.socks.host.setText("127.0.0.1")
        network.socks.port.setText("1080")
        network.socks.user.setText("alice")
    tasks = getattr(window, "tasks_panel", None)
    if tasks is not None and tasks.table.rowCount():
        tasks.refresh()
        tasks.table.selectRow(tasks.table.rowCount() - 1)


async def _chat(alice, bob) -> None:
    await bob.service("chat").send(alice.identity.id, "Round 8 is done: 0.93 on the held-out digits.")
    await _until(lambda: len(alice.service("chat").read(bob.identity.id, mark=False)) >= 1, "bob's message", 20)
    await alice.service("chat").send(bob.identity.id, "Great! I published the results to Knowledge.")
    await bob.service("chat").send(alice.identity.id, "Saw it. Let's try Krum with an attacker next.")
    await _until(lambda: len(alice.service("chat").read(bob.identity.id, mark=False)) >= 3, "the chat", 20)


async def _show_chat(window, name: str) -> None:
    """Open the conversation with ``name`` in the Chat tab (select it in the contact list)."""
    panel = getattr(window, "chat_panel", None)
    if panel is None or not hasattr(panel, "list"):
        return
    window.tabs.setCurrentWidget(panel)
    await asyncio.sleep(0.2)
    model = panel.list.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if str(model.data(index)).split("\n")[0].split("  ")[0] == name:
            panel.list.setCurrentIndex(index)   # what a click on it does (QtTest is not bundled)
            await asyncio.sleep(0.2)
            return


async def _select_peer(window, peer_id: str) -> None:
    for key in ("trust_panel", "peers_panel"):
        panel = getattr(window, key, None)
        if panel is not None and hasattr(panel, "select_peer"):
            panel.select_peer(peer_id)
            return


async def make(out_dir: Path, titles: list[str] | None = None) -> list[Path]:
    """Start the federation, fill it, draw alice's window's tabs; everything is stopped after."""
    from .style import style_sheet
    from .window import MainWindow
    from PySide6.QtWidgets import QApplication
    QApplication.instance().setStyleSheet(style_sheet())
    with tempfile.TemporaryDirectory(prefix="covey-screenshots-") as root:
        fed = Federation(Path(root))
        window = None
        try:
            await fed.start()
            window = MainWindow(fed["alice"])
            window.resize(*SIZE)
            window.show()
            await sample_data(fed, window)
            return await render(window, out_dir, titles)
        finally:
            if window is not None:
                window.close()
            await fed.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0]) if argv else OUT
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)   # closing the drawn window must not stop the loop early
    paths: list[Path] = []

    async def go() -> None:
        paths.extend(await make(out_dir))
    _run(app, go)
    for path in paths:
        print(path)
    return 0 if paths else 1


def _run(app, go) -> None:
    """Run ``go()`` on a qasync loop over ``app`` (the nodes and the window share it)."""
    import qasync
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(go())


if __name__ == "__main__":
    sys.exit(main())
