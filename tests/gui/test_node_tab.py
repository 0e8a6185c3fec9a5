"""The Node tab driven as a person does, against real nodes on 127.0.0.1: who this node is,
its contact link and QR code, renaming, LAN discovery, the passphrase, the event log and the
data folder; and Add peer filled from a contact link (pasted or dropped)."""
from __future__ import annotations

import nacl.pwhash
import pytest
import segno
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDesktopServices, QDropEvent, QGuiApplication, QDragEnterEvent
from PySide6.QtWidgets import QApplication, QCheckBox, QDialog, QRadioButton

import core.identity
from core import events as ev
from core.contact_link import contact_link
from core.identity import Identity
from desktop.node.event_log import MAX_EVENTS
from desktop.node.qr_code import BORDER
from desktop.peers.peers_model import CONNECTED
from desktop.window import MainWindow
from tests.beacons import free_udp_port


def open_tab(window, qtbot, title: str):
    """Click the tab called ``title``; the widget it shows."""
    tabs = window.tabs
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == title)
    qtbot.mouseClick(tabs.tabBar(), Qt.LeftButton, pos=tabs.tabBar().tabRect(index).center())
    assert tabs.currentIndex() == index
    return tabs.currentWidget()


def click(qtbot, widget) -> None:
    assert widget.isVisible() and widget.isEnabled(), widget.accessibleName()
    pos = widget.rect().center()
    if isinstance(widget, (QCheckBox, QRadioButton)):   # on its box: a stretched one's centre may be blank
        pos.setX(min(pos.x(), 8))
    qtbot.mouseClick(widget, Qt.LeftButton, pos=pos)


def retype(qtbot, field, text: str) -> None:
    """Select everything in ``field`` and type ``text`` over it."""
    field.setFocus(Qt.MouseFocusReason)
    qtbot.keyClick(field, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClick(field, Qt.Key_Delete)
    qtbot.keyClicks(field, text)


@pytest.fixture
def tab(window, qtbot):
    return open_tab(window, qtbot, "Node")


def test_the_node_tab_comes_first_and_shows_who_this_node_is(window, qtbot, address_of):
    assert window.tabs.tabText(0) == "Node"
    tab = open_tab(window, qtbot, "Node")
    assert tab is window.node_panel
    node = window.node
    assert tab.name.text() == "alice"
    assert tab.fingerprint.text().replace("\n", " ") == node.identity.fingerprint
    assert tab.id_label.text().replace("\n", "").replace(" ", "") == node.identity.id
    assert address_of(node) in tab.listen.text().splitlines()
    assert tab.onion.text().startswith("none: Tor is off")
    assert not tab.discovery.isChecked()
    assert tab.key_state.text().startswith("not protected")
    assert tab.passphrase_button.text() == "Set passphrase…"
    assert tab.home.text() == str(node.home)


def test_copy_buttons_put_the_id_the_fingerprint_and_the_link_on_the_clipboard(window, tab, qtbot, address_of):
    node = window.node
    for button, expected, said in ((tab.copy_id, node.identity.id, "ID copied"),
                                   (tab.copy_fingerprint, node.identity.fingerprint, "Fingerprint copied"),
                                   (tab.copy_link, f"covey://{address_of(node)}#{node.identity.id}", "Contact link")):
        QGuiApplication.clipboard().clear()
        click(qtbot, button)
        assert QGuiApplication.clipboard().text() == expected
        assert window.statusBar().currentMessage().startswith(said)


def test_the_qr_code_shows_the_contact_link(window, tab, address_of):
    link = f"covey://{address_of(window.node)}#{window.node.identity.id}"
    assert tab.link.text() == link
    assert tab.share_address.currentData() == address_of(window.node)
    # the picture holds exactly the modules of that link's code, whole pixels per module
    image = tab.qr.pixmap().toImage()
    matrix = segno.make(link, error="m", micro=False).matrix
    side = len(matrix) + 2 * BORDER
    assert image.width() == image.height() and image.width() % side == 0
    scale = image.width() // side
    assert scale >= 2
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            pixel = image.pixelColor((x + BORDER) * scale + scale // 2, (y + BORDER) * scale + scale // 2)
            assert (pixel.lightness() < 128) == bool(dark), (x, y)


def test_renaming_by_typing_and_enter(window, tab, qtbot):
    retype(qtbot, tab.name, "alice-laptop")
    assert tab.rename_button.isEnabled()
    qtbot.keyClick(tab.name, Qt.Key_Return)
    qtbot.waitUntil(lambda: window.node.identity.name == "alice-laptop")
    assert window.node.settings.name == "alice-laptop"
    qtbot.waitUntil(lambda: not tab.rename_button.isEnabled())
    assert window.statusBar().currentMessage() == "This node is now called alice-laptop"


@pytest.mark.parametrize("typed", ["", "   "])
def test_an_empty_or_blank_name_is_refused_in_words_and_the_old_one_stays(window, tab, qtbot, typed):
    saved = window.node.settings.name
    retype(qtbot, tab.name, typed)
    click(qtbot, tab.rename_button)
    qtbot.waitUntil(tab.error.isVisible)
    assert tab.error.text() == "Could not rename this node: a node name cannot be empty"
    assert tab.name.text() == "alice"                  # the old name is back in the field
    assert window.node.identity.name == "alice" and window.node.settings.name == saved
    # and the field has the cursor, so typing a real name goes where the person expects
    assert tab.focusWidget() is tab.name and tab.name.selectedText() == "alice"
    qtbot.keyClicks(tab.name, "alice2")
    qtbot.keyClick(tab.name, Qt.Key_Return)
    qtbot.waitUntil(lambda: window.node.identity.name == "alice2")


def test_an_unnamed_node_can_be_given_a_name(make_node, qtbot):
    node = make_node("nameless")
    node.identity.name = ""
    win = MainWindow(node)
    qtbot.addWidget(win)
    win.show()
    tab = open_tab(win, qtbot, "Node")
    assert tab.name.text() == ""
    qtbot.keyClicks(tab.name, "carol")
    click(qtbot, tab.rename_button)
    qtbot.waitUntil(lambda: node.identity.name == "carol")


def test_lan_discovery_is_switched_on_and_off_by_the_checkbox(make_node, qtbot):
    port = free_udp_port()
    lan = {"discovery_port": port, "discovery_interface": "127.0.0.1", "discovery_interval": 0.3}
    alice = make_node("alice", **lan)
    bob = make_node("bob", discovery=True, **lan)
    win = MainWindow(alice)
    qtbot.addWidget(win)
    win.show()
    tab = open_tab(win, qtbot, "Node")
    click(qtbot, tab.discovery)
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == "LAN discovery is on")
    assert alice.discovery_view()["running"]
    assert alice.settings.discovery and tab.discovery.isChecked() and tab.discovery.isEnabled()
    assert tab.focusWidget() is tab.discovery, "the checkbox keeps the focus: Space toggles it again"
    # bob, on the same LAN group, hears alice's beacons
    qtbot.waitUntil(lambda: any(b.id == alice.identity.id for b in bob.discovery.peers()), timeout=10000)
    qtbot.keyClick(tab.discovery, Qt.Key_Space)
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == "LAN discovery is off")
    assert not alice.discovery_view()["running"]
    assert not alice.settings.discovery and not tab.discovery.isChecked()


@pytest.fixture
def cheap_kdf(monkeypatch):
    monkeypatch.setattr(core.identity, "KDF_OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(core.identity, "KDF_MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)


def passphrase_dialog(tab, qtbot):
    click(qtbot, tab.passphrase_button)
    dialog = tab.passphrase_dialog
    qtbot.waitUntil(dialog.isVisible)
    dialog.activateWindow()
    qtbot.waitUntil(lambda: dialog.focusWidget() is (dialog.current if dialog.protected else dialog.new))
    return dialog


def test_setting_then_changing_the_passphrase(window, tab, qtbot, cheap_kdf):
    home, node = window.node.home, window.node
    dialog = passphrase_dialog(tab, qtbot)
    assert dialog.current.isHidden()           # nothing to unlock yet
    qtbot.keyClicks(dialog.new, "correct horse")
    qtbot.keyClicks(dialog.repeat, "correct hose")
    click(qtbot, dialog.ok_button)
    assert dialog.error.text() == "The two new passphrases differ." and dialog.isVisible()
    assert dialog.focusWidget() is dialog.repeat
    qtbot.keyClicks(dialog.repeat, "correct horse")   # the wrong repeat was selected: typing replaces it
    click(qtbot, dialog.ok_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=15000)
    assert dialog.result() == QDialog.Accepted
    assert Identity.load(home, b"correct horse").id == node.identity.id
    assert tab.passphrase_button.text() == "Change passphrase…"
    assert tab.key_state.text() == "protected by a passphrase"

    dialog = passphrase_dialog(tab, qtbot)
    assert dialog.current.isVisible()
    before = (home / core.identity.KEY_FILE).read_bytes()
    qtbot.keyClicks(dialog.current, "wrong")
    qtbot.keyClicks(dialog.new, "battery staple")
    qtbot.keyClicks(dialog.repeat, "battery staple")
    click(qtbot, dialog.ok_button)
    qtbot.waitUntil(dialog.error.isVisible, timeout=15000)
    assert "current passphrase is not the right one" in dialog.error.text()
    assert (home / core.identity.KEY_FILE).read_bytes() == before
    assert dialog.focusWidget() is dialog.current and dialog.current.selectedText() == "wrong"
    qtbot.keyClicks(dialog.current, "correct horse")
    qtbot.keyClick(dialog.current, Qt.Key_Return)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=15000)
    assert Identity.load(home, b"battery staple").id == node.identity.id


def test_the_event_log_shows_what_happened_filtered_by_text_and_kind(window, tab, make_node, run, qtbot,
                                                                     address_of):
    bob = make_node("bob")
    carol = make_node("carol")
    run(bob.add_peer(address_of(window.node)))
    run(carol.add_peer(address_of(window.node)))
    log = tab.log
    qtbot.waitUntil(lambda: sum(kind == ev.PEER_CONNECTED for kind, _ in log.shown()) == 2)
    qtbot.keyClicks(log.filter, "bob")
    assert log.shown() and all("bob" in text for _, text in log.shown())
    log.filter.clear()
    click(qtbot, log.kind)
    view = log.kind.view()
    qtbot.waitUntil(view.isVisible)
    row = log.kind.findData(ev.PEER_CONNECTED)
    index = view.model().index(row, 0)
    view.scrollTo(index)
    qtbot.wait(QApplication.doubleClickInterval() + 50)   # a popup ignores a release right after it opens
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=view.visualRect(index).center())
    assert log.kind.currentData() == ev.PEER_CONNECTED
    shown = log.shown()
    assert len(shown) == 2 and {k for k, _ in shown} == {ev.PEER_CONNECTED}
    assert any("carol" in text for _, text in shown) and any("bob" in text for _, text in shown)
    assert not any(bob.identity.id in text for _, text in shown), "ids are shortened"
    assert any(bob.identity.id[:12] + "…" in text for _, text in shown)


def test_the_event_log_keeps_only_the_last_events(window, tab, qtbot):
    log = tab.log
    for burst in range(3):   # bursts bigger than the log, and the log already full
        for i in range(MAX_EVENTS * burst, MAX_EVENTS * (burst + 1) - 200):
            window.node.events.emit(ev.REPUTATION_CHANGED, peer="p", reputation=i)
        last = MAX_EVENTS * (burst + 1) - 201
        qtbot.waitUntil(lambda last=last: log.shown() != [] and log.shown()[-1][1] == f"peer: p · reputation: {last}")
    shown = log.shown()
    assert len(shown) == MAX_EVENTS == log.model.rowCount()
    # the last 500 of 0..299, 500..799 and 1000..1299, in order
    assert [int(t.rsplit(" ", 1)[1]) for _, t in shown] == [*range(600, 800), *range(1000, 1300)]


def test_open_data_folder_opens_the_home(window, tab, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    click(qtbot, tab.open_home)
    assert [url.toLocalFile() for url in opened] == [str(window.node.home)]
    assert window.statusBar().currentMessage() == f"Opened {window.node.home}"
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)
    click(qtbot, tab.open_home)
    assert window.statusBar().currentMessage().startswith("Could not open the data folder")


def test_the_onion_address_is_shown_and_offered_first_when_tor_publishes_it(window, tab, run):
    onion = "a" * 50 + "234567.onion:8102"
    window.node.events.emit(ev.TOR_STATUS, running=True, bootstrap=100, summary="Done", address=onion)
    assert tab.onion.text() == onion
    assert tab.share_address.currentData() == onion
    assert tab.link.text() == contact_link(onion, window.node.identity.id)


# -- Add peer from a contact link --------------------------------------------------------------
def open_add_dialog(window, qtbot):
    open_tab(window, qtbot, "Trust")
    click(qtbot, window.peers_panel.add_button)
    dialog = window.peers_panel.add_dialog
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def test_a_contact_link_pasted_into_add_peer_fills_address_and_key(window, make_node, qtbot, address_of):
    bob = make_node("bob")
    bob_window = MainWindow(bob)
    qtbot.addWidget(bob_window)
    bob_window.show()
    bob_tab = open_tab(bob_window, qtbot, "Node")
    click(qtbot, bob_tab.copy_link)                     # bob copies his link ...
    dialog = open_add_dialog(window, qtbot)             # ... alice pastes it into Add peer
    dialog.address.setFocus(Qt.MouseFocusReason)
    qtbot.keyClick(dialog.address, Qt.Key_V, Qt.ControlModifier)
    assert dialog.address.text() == address_of(bob)
    assert dialog.key.text() == bob.identity.id
    assert not dialog.error.isVisible()
    click(qtbot, dialog.add_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=15000)
    record = window.node.peers.get(bob.identity.id)
    assert record is not None and record.pinned and record.address == address_of(bob)
    model = window.peers_panel.model
    qtbot.waitUntil(lambda: model.row_of(bob.identity.id) >= 0
                    and model.data(model.index(model.row_of(bob.identity.id), CONNECTED)) == "yes")


def drop(widget, text: str) -> bool:
    """Drag ``text`` over ``widget`` and drop it there, as a file manager or browser does."""
    mime = QMimeData()
    mime.setText(text)
    pos = QPointF(widget.rect().center())
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    QApplication.sendEvent(widget, QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return True


def test_a_contact_link_dropped_on_add_peer_fills_address_and_key(window, qtbot):
    peer = Identity.generate("dave").id
    link = f"covey://192.168.1.20:8102#{peer}"
    dialog = open_add_dialog(window, qtbot)
    assert drop(dialog.name, link)                      # on a field: not inserted as text
    assert dialog.name.text() == ""
    assert (dialog.address.text(), dialog.key.text()) == ("192.168.1.20:8102", peer)
    dialog.address.clear()
    dialog.key.clear()
    assert drop(dialog, link)                           # on the dialog itself
    assert (dialog.address.text(), dialog.key.text()) == ("192.168.1.20:8102", peer)
    assert dialog.add_button.isEnabled()
    assert not drop(dialog, "just some text")           # not a link: the drop is refused
    dialog.reject()


def test_a_bad_contact_link_is_explained_and_nothing_is_filled(window, qtbot):
    dialog = open_add_dialog(window, qtbot)
    dialog.address.setFocus(Qt.MouseFocusReason)
    qtbot.keyClicks(dialog.address, "covey://192.168.1.20:8102#1234")
    assert dialog.error.isVisible()
    assert dialog.error.text() == ("That contact link cannot be used: the node's id in a contact link "
                                   "must be 64 hex digits")
    assert dialog.key.text() == "" and not dialog.add_button.isEnabled()
    assert drop(dialog, "covey://0.0.0.0:8102#" + "ab" * 32)
    assert "not an address a peer can connect to" in dialog.error.text()
    assert dialog.key.text() == ""
    dialog.reject()


def test_every_control_has_a_tooltip_and_an_accessible_name(tab):
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QTableWidget
    controls = [w for kind in (QAbstractButton, QLineEdit, QComboBox, QTableWidget)
                for w in tab.findChildren(kind)
                if not isinstance(w.parent(), QLineEdit) and not w.objectName().startswith("qt_")]   # Qt's own parts
    assert len(controls) >= 13
    for widget in controls:
        assert widget.toolTip() and widget.accessibleName(), widget


# -- fitting the window ------------------------------------------------------------------------
def test_the_node_and_encryption_tabs_fit_a_900x600_window(make_node, qtbot, artifacts):
    from tests.gui.fit import SIZE, TABS, problems
    win = MainWindow(make_node("alice"))
    qtbot.addWidget(win)
    win.resize(*SIZE)
    win.show()
    qtbot.waitExposed(win)
    for title in TABS:
        tab = open_tab(win, qtbot, title)
        assert problems(tab) == [], title
        assert win.grab().save(str(artifacts / f"{title.lower()}-tab.png"))


def test_the_node_and_encryption_tabs_fit_at_150_percent(tmp_path, artifacts):
    import json
    import os
    import subprocess
    import sys
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "1.5",
           "COVEY_FIT_PNG": str(artifacts / "scale150"), "COVEY_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "tests.gui.fit"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"Node": [], "Encryption": [], "window": [900, 600]}


def test_the_fit_check_sees_a_cut_label_and_a_button_out_of_sight(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollArea, QWidget
    from tests.gui.fit import problems
    body = QWidget()
    row = QHBoxLayout(body)
    label = QLabel("a label far too long to be read in a narrow window")
    row.addWidget(label)
    row.addWidget(QPushButton("A button"))
    body.setMinimumWidth(400)
    area = QScrollArea()
    area.setWidget(body)
    area.setWidgetResizable(True)
    qtbot.addWidget(area)
    area.resize(200, 200)
    area.show()
    found = problems(area)
    assert any("scrolls sideways" in p for p in found)
    assert any("'A button' is out of sight" in p for p in found)
    body.setMinimumWidth(0)
    label.setMinimumWidth(1)      # a layout may now squeeze it
    area.resize(150, 200)
    assert any(p.startswith("label 'a label far too long") for p in problems(area))


def test_a_settings_change_does_not_overwrite_a_name_being_typed(window, tab, qtbot, run):
    retype(qtbot, tab.name, "alice-desk")
    run(window.node.set_mode("asymmetric", "none"))        # any change of settings redraws the tab
    qtbot.waitUntil(lambda: window.node.settings.min_mode == "none")
    assert tab.name.text() == "alice-desk" and tab.rename_button.isEnabled()
