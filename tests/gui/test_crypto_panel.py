"""The encryption panel changes modes and keys; the banner warns about plain text."""
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from desktop.peers.peers_model import CONNECTED, MODE


def choose(combo, mode: str) -> None:
    combo.setCurrentIndex(combo.findData(mode))


def test_default_is_asymmetric_with_no_banner(window):
    panel = window.crypto_panel
    assert panel.preferred.currentData() == "asymmetric"
    assert panel.minimum.currentData() == "asymmetric"
    assert not window.banner.isVisibleTo(window)
    assert not panel.apply_button.isEnabled()
    assert window.mode_label.text() == "Encryption: asymmetric (min asymmetric)"


def test_choosing_mode_none_shows_the_warning_banner(window, qtbot):
    panel = window.crypto_panel
    choose(panel.preferred, "none")
    assert panel.minimum.currentData() == "none"   # the floor follows a weaker preference
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    assert "Encryption is OFF" in window.banner.text.text()
    assert window.node.crypto_view()["mode"] == "none"
    assert window.mode_label.text() == "Encryption: none (min none)"

    choose(panel.preferred, "asymmetric")
    choose(panel.minimum, "asymmetric")
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.banner.isVisibleTo(window))
    assert window.node.crypto_view()["min"] == "asymmetric"


def test_accepting_mode_none_as_minimum_shows_its_own_warning(window, qtbot):
    panel = window.crypto_panel
    choose(panel.minimum, "none")
    assert panel.preferred.currentData() == "asymmetric"
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    assert "Unencrypted connections are accepted" in window.banner.text.text()


def test_an_unencrypted_connection_is_named_in_the_banner(window, make_node, qtbot, run, address_of):
    panel = window.crypto_panel
    choose(panel.preferred, "none")
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    plain = make_node("dave", mode="none", min_mode="none")
    run(plain.add_peer(address_of(window.node)))
    model = window.peers_panel.model
    qtbot.waitUntil(lambda: model.row_of(plain.identity.id) >= 0
                    and model.data(model.index(model.row_of(plain.identity.id), CONNECTED)) == "yes")
    assert model.data(model.index(model.row_of(plain.identity.id), MODE)) == "none"
    assert "1 connection(s) unencrypted right now" in window.banner.text.text()
    assert "dave" in window.banner.text.text()


def test_symmetric_is_offered_only_after_generating_a_network_key(window, qtbot):
    panel = window.crypto_panel
    assert not panel.symmetric_selectable()
    assert panel.key_state.text() == "none"
    qtbot.mouseClick(panel.key_button, Qt.LeftButton)
    qtbot.waitUntil(panel.symmetric_selectable)
    assert window.node.crypto_view()["network_key"]
    assert panel.key_button.text() == "Replace network key…"
    assert "symmetric mode is available" in window.statusBar().currentMessage()

    choose(panel.preferred, "symmetric")
    assert panel.preferred.currentData() == "symmetric"
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.node.crypto_view()["mode"] == "symmetric")
    assert panel.current.text().startswith("In effect: symmetric")


def test_replacing_the_network_key_asks_first(window, qtbot, run):
    panel = window.crypto_panel
    run(window.node.psk_set())
    panel.refresh()
    first = window.node.psk()
    qtbot.mouseClick(panel.key_button, Qt.LeftButton)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Cancel), Qt.LeftButton)
    assert window.node.psk() == first
    qtbot.mouseClick(panel.key_button, Qt.LeftButton)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: window.node.psk() != first)
    assert len(window.node.psk()) == 32


def test_a_refused_mode_change_is_explained_and_the_controls_reset(window, qtbot):
    panel = window.crypto_panel
    # symmetric cannot be chosen without a key; force the combo to it as a script would
    panel.preferred.setCurrentIndex(panel.preferred.findData("symmetric"))
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.error.isVisibleTo(window))
    assert "network key" in panel.error.text()
    assert "network key" in window.statusBar().currentMessage()
    assert panel.preferred.currentData() == "asymmetric"
    assert window.node.crypto_view()["mode"] == "asymmetric"
