"""The identity panel shows who this node is and copies its id."""
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication


def test_identity_panel_shows_name_fingerprint_id_and_listen_address(window):
    node, panel = window.node, window.identity_panel
    assert panel.name.text() == "alice"
    assert panel.fingerprint.text().replace("\n", " ") == node.identity.fingerprint
    assert panel.id_label.text().replace("\n", "").replace(" ", "") == node.identity.id
    assert f"127.0.0.1:{node.transport.port}" in panel.listen.text().splitlines()


def test_copy_id_puts_the_full_id_on_the_clipboard(window, qtbot):
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(window.identity_panel.copy_button, Qt.LeftButton)
    assert QGuiApplication.clipboard().text() == window.node.identity.id
    assert window.statusBar().currentMessage() == "ID copied to the clipboard"
