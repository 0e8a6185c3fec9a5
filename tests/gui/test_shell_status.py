"""The status bar's permanent fields follow the node's events: state, peers, route, encryption."""
from __future__ import annotations

from core import events as ev
from desktop.shell.status import StatusFields


def test_status_fields_show_a_running_node_direct_and_its_mode(window, artifacts):
    status = window.shell.status
    assert status.state.text() == "Node running"
    assert status.peers.text() == "0 peers connected"
    assert status.route.text() == "Route: direct"
    assert status.mode.text() == "Encryption: asymmetric (min asymmetric)"
    assert all(label.isVisible() for label in (status.state, status.peers, status.route, status.mode))
    window.statusBar().grab().save(str(artifacts / "shell-status-bar.png"))


def test_peer_count_follows_connections(window, make_node, run, qtbot, address_of):
    node = window.node
    bob = make_node("bob")
    carol = make_node("carol")
    run(bob.add_peer(address_of(node)))
    run(carol.add_peer(address_of(node)))
    qtbot.waitUntil(lambda: window.shell.status.peers.text() == "2 peers connected")
    run(bob.stop())
    qtbot.waitUntil(lambda: window.shell.status.peers.text() == "1 peer connected")


def test_route_shows_socks5_and_back_to_direct(window, run, qtbot):
    run(window.node.set_proxy("socks5", "127.0.0.1", 1080))
    qtbot.waitUntil(lambda: window.shell.status.route.text() == "Route: SOCKS5 127.0.0.1:1080")
    run(window.node.set_proxy("off"))
    qtbot.waitUntil(lambda: window.shell.status.route.text() == "Route: direct")


def test_route_shows_tor_bootstrap_from_tor_status_events(window, run, qtbot):
    run(window.node.set_proxy("tor", "127.0.0.1", 9050))
    status = window.shell.status
    assert status.route.text() == "Route: Tor 127.0.0.1:9050"
    # the payload TorController.status() gives the TOR_STATUS events it emits while bootstrapping
    window.node.events.emit(ev.TOR_STATUS, running=True, bootstrap=45, summary="Loading relay descriptors")
    assert status.route.text() == "Route: Tor (bootstrap 45%)"
    assert status.route.property("danger") is True
    assert "Nothing is sent" in status.route.toolTip()
    window.node.events.emit(ev.TOR_STATUS, running=True, bootstrap=100, summary="Done")
    assert status.route.text() == "Route: Tor (ready)"
    assert status.route.property("danger") is False


def test_encryption_mode_follows_a_settings_change(window, run, qtbot):
    run(window.node.set_mode("none", "none"))
    qtbot.waitUntil(lambda: window.shell.status.mode.text() == "Encryption: none (min none)")
    assert window.shell.status.mode.property("danger") is True


def test_node_state_goes_from_starting_to_running_to_stopping(tmp_path, run, qtbot):
    from core.config import Settings
    from core.identity import Identity
    from core.node import Node
    home = tmp_path / "dora"
    identity = Identity.generate("dora")
    identity.save(home)
    node = Node(home, identity, Settings(listen="127.0.0.1:0", discovery=False))
    status = StatusFields(node)
    qtbot.addWidget(status)
    unsubscribe = node.events.on(None, lambda event: getattr(status, f"on_event_{event.name}",
                                                             lambda e: None)(event))
    assert status.state.text() == "Node starting"
    run(node.start())
    assert status.state.text() == "Node running"
    run(node.stop())
    assert status.state.text() == "Node stopping"
    unsubscribe()
