"""What a new user hit in the desktop app (issue 10), driven as a person drives it, real nodes on 127.0.0.1."""
from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from core.identity import Identity
from desktop.peers.peers_model import CONNECTED


def cell(window, peer_id: str, column: int):
    model = window.peers_panel.model
    row = model.row_of(peer_id)
    return None if row < 0 else model.data(model.index(row, column))


def open_add_dialog(window, qtbot):
    bar = window.tabs.tabBar()   # the Trust tab first, as a person would
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(window.tabs.indexOf(window.peers_panel)).center())
    qtbot.mouseClick(window.peers_panel.add_button, Qt.LeftButton)
    dialog = window.peers_panel.add_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.activateWindow()
    qtbot.waitUntil(lambda: dialog.focusWidget() is dialog.address)
    return dialog


def type_into_focus(qtbot, dialog, text: str) -> None:
    """Type where the keyboard focus is, as a person does."""
    qtbot.keyClicks(dialog.focusWidget(), text)


def press_enter(qtbot, dialog) -> None:
    qtbot.keyClick(dialog.focusWidget(), Qt.Key_Return)


def fill(qtbot, dialog, address: str, key: str = "") -> None:
    type_into_focus(qtbot, dialog, address)
    if key:
        qtbot.keyClick(dialog.focusWidget(), Qt.Key_Tab)
        assert dialog.focusWidget() is dialog.key
        type_into_focus(qtbot, dialog, key)


def test_a_wrong_key_is_refused_in_the_dialog_and_nothing_is_saved(window, make_node, qtbot, address_of):
    bob = make_node("bob")
    wrong = Identity.generate("mallory").id
    dialog = open_add_dialog(window, qtbot)
    fill(qtbot, dialog, address_of(bob), wrong)
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=15000)
    assert dialog.isVisible()
    assert "man in the middle" in dialog.error.text()
    assert window.node.peers.get(wrong) is None and window.node.peers.get(bob.identity.id) is None
    assert window.peers_panel.model.rowCount() == 0
    # the key is what needs fixing: the cursor is there, the wrong key selected, Enter retries
    assert dialog.focusWidget() is dialog.key and dialog.key.isEnabled()
    assert dialog.key.selectedText() == wrong
    type_into_focus(qtbot, dialog, bob.identity.id)
    assert dialog.key.text() == bob.identity.id
    press_enter(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=15000)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "yes")
    assert window.node.peers.get(bob.identity.id).pinned


@pytest.fixture
def silent_server(qloop, run):
    """A TCP server on 127.0.0.1 that accepts and never answers: a dial to it hangs."""
    state = {"open": 0, "closed": 0}

    async def handle(reader, writer):
        state["open"] += 1
        try:
            await reader.read()   # until the client goes away
        finally:
            state["closed"] += 1
            writer.close()

    server = run(asyncio.start_server(handle, "127.0.0.1", 0))
    state["address"] = "127.0.0.1:%d" % server.sockets[0].getsockname()[1]
    yield state
    server.close()


@pytest.mark.parametrize("with_key", [True, False])
def test_cancel_while_connecting_cancels_and_adds_nothing(make_node, qtbot, silent_server, with_key):
    from desktop.window import MainWindow
    node = make_node("alice", connect_timeout=60.0)   # the attempt would hang for a minute
    window = MainWindow(node)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    errors: list[str] = []
    window.peers_panel.failed.connect(errors.append)
    key = Identity.generate("carol").id
    dialog = open_add_dialog(window, qtbot)
    fill(qtbot, dialog, silent_server["address"], key if with_key else "")
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: silent_server["open"] == 1)
    assert dialog.add_button.text() == "Connecting…"
    cancel = dialog.buttons.button(dialog.buttons.StandardButton.Cancel)
    assert cancel.isEnabled()
    qtbot.mouseClick(cancel, Qt.LeftButton)
    assert not dialog.isVisible()
    # the core call is cancelled: its connection closes long before its 60 s deadline
    qtbot.waitUntil(lambda: silent_server["closed"] == 1, timeout=10000)
    qtbot.waitUntil(lambda: "cancelled" in window.statusBar().currentMessage())
    assert node.list_peers() == [] and node.peers.get(key) is None
    assert window.peers_panel.model.rowCount() == 0 and errors == []


def test_after_a_failed_add_the_address_has_the_focus_and_enter_submits(window, make_node, qtbot, address_of):
    dialog = open_add_dialog(window, qtbot)
    fill(qtbot, dialog, "127.0.0.1:1")   # nothing listens there
    press_enter(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=15000)
    assert dialog.isVisible() and dialog.address.isEnabled()
    assert dialog.focusWidget() is dialog.address
    assert dialog.address.selectedText() == "127.0.0.1:1"
    bob = make_node("bob")
    type_into_focus(qtbot, dialog, address_of(bob))
    assert dialog.address.text() == address_of(bob)
    press_enter(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=15000)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "yes")
    assert QApplication.activeModalWidget() is None


# -- disabled controls look disabled -----------------------------------------------------------
def colours(image, rect=None) -> set[int]:
    """The distinct RGB values in ``rect`` of a grabbed image (all of it by default)."""
    rect = (rect or image.rect()).intersected(image.rect())
    return {image.pixel(x, y) & 0xFFFFFF for x in range(rect.left(), rect.right() + 1)
            for y in range(rect.top(), rect.bottom() + 1)}


def darkest(image, rect) -> int:
    """The luminance (0-255) of the darkest pixel in ``rect``: the text's colour on a light row."""
    def luma(rgb: int) -> float:
        return 0.299 * (rgb >> 16 & 255) + 0.587 * (rgb >> 8 & 255) + 0.114 * (rgb & 255)
    return round(min(luma(c) for c in colours(image, rect)))


def test_a_disabled_primary_button_is_rendered_differently(window, qtbot):
    from PySide6.QtWidgets import QPushButton
    enabled, disabled = QPushButton("Add peer…", window), QPushButton("Add peer…", window)
    for button in (enabled, disabled):
        button.setObjectName("primary")
        button.style().unpolish(button)
        button.style().polish(button)
        button.resize(160, 36)
        button.show()
    disabled.setEnabled(False)
    on, off = enabled.grab().toImage(), disabled.grab().toImage()
    centre_left = (8, on.height() // 2)   # inside the border, left of the text: the fill
    assert on.pixel(*centre_left) != off.pixel(*centre_left)
    assert colours(on) != colours(off)


def test_symmetric_without_a_network_key_is_a_disabled_greyed_item(window, qtbot):
    panel = window.encryption_panel.modes
    combo = panel.preferred
    row_sym, row_asym = combo.findData("symmetric"), combo.findData("asymmetric")
    model = combo.model()
    assert not model.flags(model.index(row_sym, 0)) & Qt.ItemIsEnabled
    assert model.flags(model.index(row_asym, 0)) & Qt.ItemIsEnabled
    qtbot.mouseClick(combo, Qt.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible)
    image = view.viewport().grab().toImage()
    sym = darkest(image, view.visualRect(model.index(row_sym, 0)))
    asym = darkest(image, view.visualRect(model.index(row_asym, 0)))
    assert sym - asym > 60, (sym, asym)   # grey text against the near-black of a live item
    # clicking the greyed item does not choose it
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=view.visualRect(model.index(row_sym, 0)).center())
    assert combo.currentData() == "asymmetric"
    combo.hidePopup()


def test_a_disabled_menu_item_is_greyed(window, qtbot):
    from PySide6.QtWidgets import QMenu
    panel = window.peers_panel
    assert not panel.unban_button.isEnabled()
    menu = QMenu(window)
    live = menu.addAction("Ban")
    dead = menu.addAction("Unban")
    dead.setEnabled(panel.unban_button.isEnabled())
    menu.popup(window.mapToGlobal(window.rect().center()))
    qtbot.waitUntil(menu.isVisible)
    image = menu.grab().toImage()
    assert darkest(image, menu.actionGeometry(dead)) - darkest(image, menu.actionGeometry(live)) > 60
    menu.hide()


# -- the Trust tab (the peer table) ------------------------------------------------------------
def trust_peer(window, make_node, qtbot, address_of, name="bob"):
    """Add a second real node through Add peer, typed as a person types, and wait until it is connected."""
    other = make_node(name)
    dialog = open_add_dialog(window, qtbot)
    fill(qtbot, dialog, address_of(other))
    press_enter(qtbot, dialog)
    qtbot.waitUntil(lambda: cell(window, other.identity.id, CONNECTED) == "yes", timeout=15000)
    return other


def test_a_banned_disconnected_peer_shows_no_mode(window, make_node, qtbot, address_of):
    from desktop.peers.peers_model import MODE, TIER
    bob = trust_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    assert cell(window, bob.identity.id, MODE) == "asymmetric"
    panel.select_peer(bob.identity.id)
    qtbot.mouseClick(panel.ban_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "banned"
                    and cell(window, bob.identity.id, CONNECTED) == "no")
    assert cell(window, bob.identity.id, MODE) == "—"
    # and after a restart of the window, read from the peer book, still none
    panel.refresh()
    assert cell(window, bob.identity.id, MODE) == "—"


def test_the_tier_menu_offers_one_of_many_items(window, make_node, qtbot, address_of):
    bob = trust_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)
    menu = panel.tier_button.menu()
    seen = []

    def look_and_close():   # the button's menu runs its own loop until it closes
        seen.append((menu.isVisible(), [a.isChecked() for a in menu.actions()]))
        menu.hide()
    QTimer.singleShot(200, look_and_close)
    qtbot.mouseClick(panel.tier_button, Qt.LeftButton)   # opens its menu
    qtbot.waitUntil(lambda: seen != [])
    assert seen == [(True, [False, False, False, True])]   # unknown
    actions = menu.actions()
    groups = {a.actionGroup() for a in actions}
    assert len(groups) == 1 and None not in groups, "the tier items must be one group of radio items"
    assert groups.pop().isExclusive()
    assert [a.isChecked() for a in actions] == [False, False, False, True]   # unknown
    menu.hide()
    panel.tier_actions["external"].trigger()
    qtbot.waitUntil(lambda: window.node.peers.get(bob.identity.id).tier == "external")
    assert [a.isChecked() for a in actions] == [False, False, True, False]


def controls(widget):
    """Every control a person can operate inside ``widget`` (visible or not)."""
    from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QComboBox, QLineEdit
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView)
    found = [w for kind in kinds for w in widget.findChildren(kind)]
    # not Qt's own inner parts (a line edit's clear icon, scroll bar buttons): Qt names those
    return [w for w in found if not w.objectName().startswith("qt_")
            and w.metaObject().className() != "QLineEditIconButton"]   # Qt's own inner parts (scroll bar buttons ...)


def test_every_trust_tab_control_has_a_tooltip_and_an_accessible_name(window, make_node, qtbot, address_of):
    bob = trust_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)
    open_add_dialog(window, qtbot)   # a child of the panel: its fields count too
    found = list(dict.fromkeys(controls(panel) + controls(panel.details)))
    assert len(found) >= 12, found
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in found
               if not w.toolTip() or not w.accessibleName()]
    assert missing == [], f"controls without a tooltip or an accessible name: {missing}"
    actions = list(panel.tier_actions.values())
    assert all(a.toolTip() and a.toolTip() != a.text().replace("&", "") for a in actions)


def test_no_command_line_wording_for_a_malformed_key(window, make_node, qtbot, address_of):
    bob = make_node("bob")
    dialog = open_add_dialog(window, qtbot)
    fill(qtbot, dialog, address_of(bob), "abc123")
    press_enter(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=15000)
    shown = dialog.error.text() + " " + window.statusBar().currentMessage()
    assert "key" in dialog.error.text().lower() and "64 hex digits" in dialog.error.text()
    assert "--" not in shown and "covey " not in shown, shown
    assert dialog.focusWidget() is dialog.key
    panel_texts = [w.toolTip() for w in controls(window.peers_panel)] + [window.peers_panel.empty.text()]
    assert not [t for t in panel_texts if "--" in t or "covey " in t]
