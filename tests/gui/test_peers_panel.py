"""Every action of the peers panel, against real nodes on 127.0.0.1."""
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from desktop.peers.peers_model import CONNECTED, ID, MODE, NAME, TIER


def cell(window, peer_id: str, column: int) -> str | None:
    model = window.peers_panel.model
    row = model.row_of(peer_id)
    return None if row < 0 else model.data(model.index(row, column))


def add_through_dialog(window, qtbot, address: str, key: str = "", name: str = ""):
    qtbot.mouseClick(window.peers_panel.add_button, Qt.LeftButton)
    dialog = window.peers_panel.add_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.address.setText(address)
    dialog.key.setText(key)
    dialog.name.setText(name)
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    return dialog


def connected_peer(window, make_node, qtbot, address_of, name="bob"):
    """Add a second real node through the dialog and wait until it shows as connected."""
    other = make_node(name)
    dialog = add_through_dialog(window, qtbot, address_of(other), name=name)
    qtbot.waitUntil(lambda: cell(window, other.identity.id, CONNECTED) == "yes")
    qtbot.waitUntil(lambda: not dialog.isVisible())
    return other


def test_add_peer_dialog_connects_and_the_peer_appears_connected(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    assert cell(window, bob.identity.id, NAME) == "bob"
    assert cell(window, bob.identity.id, ID) == bob.identity.id[:12]
    assert cell(window, bob.identity.id, TIER) == "unknown"
    assert cell(window, bob.identity.id, MODE) == "asymmetric"
    assert window.peer_count.text() == "1 peer connected"
    assert window.peers_panel.selected_peer()["id"] == bob.identity.id


def test_add_peer_with_a_pinned_key(window, make_node, qtbot, address_of):
    bob = make_node("bob")
    add_through_dialog(window, qtbot, address_of(bob), key=bob.identity.id.upper(), name="bob")
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "yes")
    assert window.node.peers.get(bob.identity.id).pinned


def test_a_bad_address_shows_an_error_and_keeps_the_dialog_open(window, qtbot):
    dialog = add_through_dialog(window, qtbot, "not an address")
    qtbot.waitUntil(lambda: dialog.error.isVisible())
    assert dialog.isVisible() and dialog.add_button.isEnabled()
    assert dialog.error.text()
    assert "not an address" in window.statusBar().currentMessage()
    assert window.peers_panel.model.rowCount() == 0
    # a second, different failure: nothing listens there
    dialog.address.setText("127.0.0.1:1")
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible() and "127.0.0.1:1" in window.statusBar().currentMessage())
    assert "Traceback" not in dialog.error.text()
    assert window.peers_panel.model.rowCount() == 0
    dialog.reject()


def test_a_malformed_key_is_refused_with_a_reason(window, make_node, qtbot, address_of):
    bob = make_node("bob")
    dialog = add_through_dialog(window, qtbot, address_of(bob), key="abc123")
    qtbot.waitUntil(lambda: dialog.error.isVisible())
    assert "64 hex digits" in dialog.error.text()
    assert window.peers_panel.model.rowCount() == 0


def test_set_tier_shows_each_tier_in_the_table(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    for tier in ("core", "sandbox", "external", "unknown"):
        panel.select_peer(bob.identity.id)
        panel.tier_actions[tier].trigger()
        qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == tier)
        assert window.node.peers.get(bob.identity.id).tier == tier
        assert panel.tier_actions[tier].isChecked()


def test_ban_shows_banned_and_disconnected_and_unban_lifts_it(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)
    assert panel.ban_button.isEnabled() and not panel.unban_button.isEnabled()
    qtbot.mouseClick(panel.ban_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "banned"
                    and cell(window, bob.identity.id, CONNECTED) == "no")
    assert window.peer_count.text() == "0 peers connected"
    assert panel.unban_button.isEnabled() and not panel.ban_button.isEnabled()

    qtbot.mouseClick(panel.unban_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "unknown")
    # the node redials the unbanned peer by itself; the table follows the event
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "yes", timeout=15000)


def test_remove_asks_first_and_cancel_keeps_the_row(window, make_node, qtbot, run, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    run(bob.stop())   # an offline peer: nothing reconnects behind our back
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "no")
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)

    qtbot.mouseClick(panel.remove_button, Qt.LeftButton)
    box = panel.confirm_box
    assert box is not None and box.isVisible() and "bob" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.Cancel), Qt.LeftButton)
    assert cell(window, bob.identity.id, NAME) == "bob"

    panel.select_peer(bob.identity.id)
    qtbot.mouseClick(panel.remove_button, Qt.LeftButton)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.model.row_of(bob.identity.id) < 0)
    assert window.node.peers.get(bob.identity.id) is None
    assert panel.empty.isVisibleTo(panel)   # the hint, on the Peers tab (not the current tab)


def test_actions_are_disabled_without_a_selection(window, make_node, qtbot, address_of):
    connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.table.clearSelection()
    assert not any(b.isEnabled() for b in (panel.tier_button, panel.ban_button,
                                            panel.unban_button, panel.remove_button))
    assert panel.add_button.isEnabled()


def test_a_peer_that_connects_to_us_appears_without_any_click(window, make_node, qtbot, run, address_of):
    carol = make_node("carol")
    run(carol.add_peer(address_of(window.node)))
    qtbot.waitUntil(lambda: cell(window, carol.identity.id, CONNECTED) == "yes")
    assert cell(window, carol.identity.id, NAME) == "carol"
    assert window.peer_count.text() == "1 peer connected"
    run(carol.stop())
    qtbot.waitUntil(lambda: cell(window, carol.identity.id, CONNECTED) == "no")
    assert window.peer_count.text() == "0 peers connected"


def test_selecting_a_peer_shows_its_full_fingerprint_and_id(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)
    details = panel.details
    assert details.isVisibleTo(window) and details.title() == "Selected peer: bob"
    assert details.fingerprint.text().split() == bob.identity.fingerprint.split()
    assert "".join(details.peer_id.text().split()) == bob.identity.id
    assert details.address.text() == address_of(bob)
    assert details.tier.text().startswith("unknown:")
    panel.table.clearSelection()
    assert not details.isVisibleTo(window)
