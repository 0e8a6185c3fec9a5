"""The Encryption tab, driven as a person does against real nodes on 127.0.0.1: modes, the
network key (generate, import, export), the live sessions; the banner warns about plain text."""
from __future__ import annotations

import os
import stat

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from desktop.peers.peers_model import CONNECTED, MODE
from tests.gui.test_node_tab import click, open_tab
from tests.socks import needs_microsocks, socks_proxy  # noqa: F401  (the fixture)


@pytest.fixture
def tab(window, qtbot):
    """The Encryption tab, opened by clicking its tab."""
    tab = open_tab(window, qtbot, "Encryption")
    assert tab is window.encryption_panel
    return tab


def choose(qtbot, combo, mode: str) -> None:
    """Open the combo's list and click the item of ``mode``."""
    click(qtbot, combo)
    view = combo.view()
    qtbot.waitUntil(view.isVisible)
    index = view.model().index(combo.findData(mode), 0)
    qtbot.wait(QApplication.doubleClickInterval() + 50)   # a popup ignores a release right after it opens
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=view.visualRect(index).center())
    qtbot.waitUntil(lambda: not view.isVisible())


def test_default_is_asymmetric_with_no_banner(window, tab):
    panel = tab.modes
    assert panel.preferred.currentData() == "asymmetric"
    assert panel.minimum.currentData() == "asymmetric"
    assert not window.banner.isVisibleTo(window)
    assert not panel.apply_button.isEnabled()
    assert window.mode_label.text() == "Encryption: asymmetric (min asymmetric)"


def test_choosing_mode_none_shows_the_warning_banner(window, tab, qtbot):
    panel = tab.modes
    choose(qtbot, panel.preferred, "none")
    assert panel.minimum.currentData() == "none"   # the floor follows a weaker preference
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    assert "Encryption is OFF" in window.banner.text.text()
    assert window.node.crypto_view()["mode"] == "none"
    assert window.mode_label.text() == "Encryption: none (min none)"

    choose(qtbot, panel.preferred, "asymmetric")
    choose(qtbot, panel.minimum, "asymmetric")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: not window.banner.isVisibleTo(window))
    assert window.node.crypto_view()["min"] == "asymmetric"


def test_accepting_mode_none_as_minimum_shows_its_own_warning(window, tab, qtbot):
    panel = tab.modes
    choose(qtbot, panel.minimum, "none")
    assert panel.preferred.currentData() == "asymmetric"
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    assert "Unencrypted connections are accepted" in window.banner.text.text()


def test_an_unencrypted_connection_is_named_in_the_banner(window, tab, make_node, qtbot, run, address_of):
    panel = tab.modes
    choose(qtbot, panel.preferred, "none")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    plain = make_node("dave", mode="none", min_mode="none")
    run(plain.add_peer(address_of(window.node)))
    model = window.peers_panel.model
    qtbot.waitUntil(lambda: model.row_of(plain.identity.id) >= 0
                    and model.data(model.index(model.row_of(plain.identity.id), CONNECTED)) == "yes")
    assert model.data(model.index(model.row_of(plain.identity.id), MODE)) == "none"
    assert "1 connection(s) unencrypted right now" in window.banner.text.text()
    assert "dave" in window.banner.text.text()


def test_symmetric_is_offered_only_after_generating_a_network_key(window, tab, qtbot):
    panel = tab.modes
    assert not panel.symmetric_selectable()
    assert panel.key_state.text() == "none"
    click(qtbot, panel.key_button)
    qtbot.waitUntil(panel.symmetric_selectable)
    assert window.node.crypto_view()["network_key"]
    assert panel.key_button.text() == "Replace…"
    assert panel.key_button.accessibleName() == "Replace the network key"
    assert "symmetric mode is available" in window.statusBar().currentMessage()

    choose(qtbot, panel.preferred, "symmetric")
    assert panel.preferred.currentData() == "symmetric"
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: window.node.crypto_view()["mode"] == "symmetric")
    assert panel.current.text().startswith("In effect: symmetric")


def test_replacing_the_network_key_asks_first(window, tab, qtbot, run):
    panel = tab.modes
    run(window.node.psk_set())
    panel.refresh()
    first = window.node.psk()
    click(qtbot, panel.key_button)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Cancel), Qt.LeftButton)
    assert window.node.psk() == first
    click(qtbot, panel.key_button)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: window.node.psk() != first)
    assert len(window.node.psk()) == 32


def test_a_refused_mode_change_is_explained_and_the_controls_reset(window, tab, qtbot):
    panel = tab.modes
    # symmetric cannot be chosen without a key; force the combo to it as a script would
    panel.preferred.setCurrentIndex(panel.preferred.findData("symmetric"))
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: panel.error.isVisibleTo(window))
    assert "network key" in panel.error.text()
    assert "network key" in window.statusBar().currentMessage()
    assert panel.preferred.currentData() == "asymmetric"
    assert window.node.crypto_view()["mode"] == "asymmetric"


# -- network key files -----------------------------------------------------------------------
def answer_file_dialog(monkeypatch, getter: str, path) -> list:
    """Make QFileDialog.<getter> answer ``path`` as if the person picked it; the calls it got."""
    calls = []

    def pick(*args, **kwargs):
        calls.append(args)
        return (str(path), "") if path else ("", "")
    monkeypatch.setattr(QFileDialog, getter, staticmethod(pick))
    return calls


def test_importing_a_network_key_from_a_file(window, tab, qtbot, monkeypatch, tmp_path):
    panel = tab.modes
    key = bytes(range(32))
    path = tmp_path / "from-bob.key"
    path.write_text(key.hex().upper() + "\n")
    calls = answer_file_dialog(monkeypatch, "getOpenFileName", path)
    assert not panel.export_button.isEnabled()   # nothing to export yet
    click(qtbot, panel.import_button)
    qtbot.waitUntil(panel.symmetric_selectable)
    assert len(calls) == 1
    assert window.node.psk() == key
    assert panel.key_state.text().startswith("set")
    assert window.statusBar().currentMessage() == "Network key imported: symmetric mode is available"
    assert panel.export_button.isEnabled()


@pytest.mark.parametrize("content, words", [(b"not a key\n", "64 hex digits"), (b"ab" * 31, "32 bytes"),
                                            (b"\xff\xfe" * 10, "not a network key file"),
                                            (b"0" * 5000, "larger than 4096 bytes")])
def test_a_file_that_is_not_a_network_key_is_refused_in_words(window, tab, qtbot, monkeypatch, tmp_path,
                                                              content, words):
    panel = tab.modes
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    answer_file_dialog(monkeypatch, "getOpenFileName", path)
    click(qtbot, panel.import_button)
    qtbot.waitUntil(panel.error.isVisible)
    assert panel.error.text().startswith("Could not import the network key: ")
    assert words in panel.error.text()
    assert window.node.psk() is None and not panel.symmetric_selectable()
    qtbot.waitUntil(panel.import_button.isEnabled)


def test_importing_over_a_key_asks_first_and_cancel_keeps_it(window, tab, qtbot, monkeypatch, tmp_path, run):
    panel = tab.modes
    run(window.node.psk_set())
    first = window.node.psk()
    path = tmp_path / "other.key"
    path.write_text(bytes(32).hex())
    answer_file_dialog(monkeypatch, "getOpenFileName", path)
    click(qtbot, panel.import_button)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Cancel), Qt.LeftButton)
    assert window.node.psk() == first
    click(qtbot, panel.import_button)
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: window.node.psk() == bytes(32))


def test_a_cancelled_file_dialog_changes_nothing(window, tab, qtbot, monkeypatch):
    panel = tab.modes
    answer_file_dialog(monkeypatch, "getOpenFileName", None)
    click(qtbot, panel.import_button)
    assert window.node.psk() is None and not panel.error.isVisible()


def test_exporting_the_network_key_writes_a_private_file_a_peer_can_import(window, tab, qtbot, monkeypatch,
                                                                           tmp_path, make_node, run):
    panel = tab.modes
    click(qtbot, panel.key_button)
    qtbot.waitUntil(panel.export_button.isEnabled)
    path = tmp_path / "for-bob.key"
    answer_file_dialog(monkeypatch, "getSaveFileName", path)
    click(qtbot, panel.export_button)
    qtbot.waitUntil(path.exists)
    assert path.read_text().strip() == window.node.psk().hex()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith(f"Network key written to {path}"))
    bob = make_node("bob")
    run(bob.psk_import(path))
    assert bob.psk() == window.node.psk()


def test_an_export_that_cannot_be_written_is_explained(window, tab, qtbot, monkeypatch, tmp_path, run):
    panel = tab.modes
    run(window.node.psk_set())
    panel.refresh()
    answer_file_dialog(monkeypatch, "getSaveFileName", tmp_path / "no-such-dir" / "x.key")
    click(qtbot, panel.export_button)
    qtbot.waitUntil(panel.error.isVisible)
    assert panel.error.text().startswith("Could not export the network key: ")


# -- live sessions ---------------------------------------------------------------------------
def test_the_live_sessions_table_follows_connections(window, tab, qtbot, make_node, run, address_of):
    sessions = tab.sessions
    assert sessions.table.rowCount() == 0 and sessions.empty.isVisible()
    bob = make_node("bob")
    carol = make_node("carol")
    run(bob.add_peer(address_of(window.node)))                  # bob dials alice
    run(window.node.add_peer(address_of(carol), name="carol"))  # alice dials carol
    qtbot.waitUntil(lambda: len(sessions.rows()) == 2)
    assert sessions.rows() == [("bob", "asymmetric", "inbound"), ("carol", "asymmetric", "direct")]
    assert not sessions.empty.isVisible()
    run(carol.stop())
    qtbot.waitUntil(lambda: sessions.rows() == [("bob", "asymmetric", "inbound")])


@needs_microsocks
def test_a_session_dialled_through_a_socks5_proxy_says_so(window, tab, qtbot, make_node, run, address_of,
                                                          socks_proxy):  # noqa: F811
    run(window.node.set_proxy("socks5", "127.0.0.1", socks_proxy, "covey", "s3cret"))
    carol = make_node("carol")
    run(window.node.add_peer(address_of(carol), name="carol"))
    qtbot.waitUntil(lambda: tab.sessions.rows() == [("carol", "asymmetric", "SOCKS5")])
    assert "through the SOCKS5 proxy" in tab.sessions.table.item(0, 2).toolTip()


def test_a_session_in_mode_none_is_shown_in_red(window, tab, qtbot, make_node, run, address_of):
    run(window.node.set_mode("none", "none"))
    plain = make_node("dave", mode="none", min_mode="none")
    run(plain.add_peer(address_of(window.node)))
    sessions = tab.sessions
    qtbot.waitUntil(lambda: sessions.rows() == [("dave", "none", "inbound")])
    assert sessions.table.item(0, 1).foreground().color().name() == "#b71c1c"
    assert "NOT encrypted" in sessions.table.item(0, 1).toolTip()


def test_every_control_has_a_tooltip_and_an_accessible_name(tab):
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QTableWidget
    controls = [w for kind in (QAbstractButton, QComboBox, QTableWidget) for w in tab.findChildren(kind)
                if not isinstance(w.parent(), QLineEdit) and not w.objectName().startswith("qt_")]
    assert len(controls) >= 7
    for widget in controls:
        assert widget.toolTip() and widget.accessibleName(), widget


def test_a_peer_name_with_markup_stays_text_in_the_sessions_and_the_event_log(window, tab, qtbot, make_node,
                                                                               run, address_of):
    from PySide6.QtCore import Qt as _Qt
    evil = '<img src="file:///etc/passwd"><b>mallory</b>'
    mallory = make_node(evil)
    run(mallory.add_peer(address_of(window.node)))
    sessions = tab.sessions
    qtbot.waitUntil(lambda: len(sessions.rows()) == 1)
    assert sessions.rows()[0][0] == evil                       # the cell is plain text
    tip = sessions.table.item(0, 0).toolTip()
    assert "&lt;img" in tip and "<img" not in tip
    log = window.node_panel.log
    qtbot.waitUntil(lambda: any(kind == "peer_connected" for kind, _ in log.shown()))
    model = log.shown_rows
    row = next(r for r in range(model.rowCount()) if model.index(r, 1).data(_Qt.UserRole) == "peer_connected")
    tip = model.index(row, 2).data(_Qt.ToolTipRole)
    assert "&lt;b&gt;mallory" in tip and "<b>" not in tip
