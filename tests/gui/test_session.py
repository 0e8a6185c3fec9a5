"""The desktop session: node + control API + window, stopped cleanly on close."""
import asyncio

from core.app.client import call
from core.config import Settings
from core.identity import Identity
from core.node import Node
from desktop.app import Session


def test_the_gui_node_serves_the_cli_and_stops_when_the_window_closes(tmp_path, run, qtbot):
    home = tmp_path / "gui"
    identity = Identity.generate("lena")
    identity.save(home)
    session = Session(Node(home, identity, Settings(listen="127.0.0.1:0", discovery=False)))
    running = asyncio.ensure_future(session.run())
    qtbot.waitUntil(lambda: session.window is not None and session.window.isVisible())
    try:
        # `covey id` / `covey peers list` from another process talk to the GUI's node
        info = run(asyncio.to_thread(call, home, "id", {}))
        assert info["id"] == identity.id and info["name"] == "lena"
        assert run(asyncio.to_thread(call, home, "peers.list", {})) == []
        assert (home / "control.json").exists()
    finally:
        session.window.close()
    qtbot.waitUntil(running.done, timeout=10000)
    assert running.result() is None
    assert not (home / "control.json").exists()
    assert session.node.store is not None and session.node._stopping


def test_a_node_that_cannot_start_returns_a_message_for_the_user(tmp_path, run, make_node):
    first = make_node("mia")
    # a second node on the same port cannot listen
    clash = Node(tmp_path / "clash", Identity.generate("clash"),
                 Settings(listen=f"127.0.0.1:{first.transport.port}", discovery=False))
    Identity.generate("clash").save(tmp_path / "clash")
    error = run(Session(clash).run())
    assert error and "Traceback" not in error
    assert "in use" in error.lower()
