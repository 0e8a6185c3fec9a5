"""Every action of the Trust tab (the peer table), against real nodes on 127.0.0.1, driven as a person does."""
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QContextMenuEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.peers.peers_model import CONNECTED, ID, MODE, NAME, ROUTE, TIER, VERIFIED
from tests.gui.peer_book import populate


def cell(window, peer_id: str, column: int) -> str | None:
    model = window.peers_panel.model
    row = model.row_of(peer_id)
    return None if row < 0 else model.data(model.index(row, column))


def show_trust_tab(window, qtbot) -> None:
    """Click the Trust tab's title in the tab bar, as a person does."""
    bar = window.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(window.tabs.indexOf(window.peers_panel)).center())
    assert window.tabs.currentWidget() is window.peers_panel


def add_through_dialog(window, qtbot, address: str, key: str = "", name: str = ""):
    show_trust_tab(window, qtbot)
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
        if tier == "core":   # raising to CORE asks first
            qtbot.waitUntil(lambda: panel.core_dialog is not None and panel.core_dialog.isVisible())
            qtbot.mouseClick(panel.core_dialog.confirm_button, Qt.LeftButton)
        qtbot.waitUntil(lambda t=tier: cell(window, bob.identity.id, TIER) == t)
        assert window.node.peers.get(bob.identity.id).tier == tier
        assert panel.tier_actions[tier].isChecked()
        assert [t for t, a in panel.tier_actions.items() if a.isChecked()] == [tier]


def tier_cell_centre(panel, peer_id: str) -> QPoint:
    index = panel.table.model().index(panel._view_index(panel.model.row_of(peer_id)).row(), TIER)
    return panel.table.visualRect(index).center()


def pick_in_tier_editor(qtbot, panel, peer_id: str, tier: str) -> None:
    """Double-click the tier cell, open its combo and click ``tier`` in the list."""
    viewport = panel.table.viewport()
    qtbot.mouseClick(viewport, Qt.LeftButton, pos=tier_cell_centre(panel, peer_id))
    qtbot.mouseDClick(viewport, Qt.LeftButton, pos=tier_cell_centre(panel, peer_id))
    qtbot.waitUntil(lambda: panel.tier_delegate.editor is not None and panel.tier_delegate.editor.isVisible())
    combo = panel.tier_delegate.editor
    assert combo.currentData() == panel.model.peer(panel.model.row_of(peer_id))["tier"]
    assert combo.toolTip() and combo.accessibleName() == "Trust tier"
    assert all(combo.itemData(i, Qt.ToolTipRole) for i in range(combo.count()))
    qtbot.mouseClick(combo, Qt.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible)
    # the popup ignores a release within a double-click interval of opening (a person is slower)
    qtbot.wait(QApplication.doubleClickInterval() + 50)
    item = view.visualRect(combo.model().index(combo.findData(tier), 0)).center()
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=item)


def test_the_tier_cell_is_a_combo_and_picking_a_tier_sets_it(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    pick_in_tier_editor(qtbot, panel, bob.identity.id, "sandbox")
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "sandbox")
    assert window.node.peers.get(bob.identity.id).tier == "sandbox"
    assert panel.core_dialog is None, "only raising to CORE asks"
    assert "sandbox" in window.statusBar().currentMessage()


def test_raising_to_core_shows_both_fingerprints_and_the_safety_number_and_cancel_changes_nothing(
        window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    pick_in_tier_editor(qtbot, panel, bob.identity.id, "core")
    qtbot.waitUntil(lambda: panel.core_dialog is not None and panel.core_dialog.isVisible())
    dialog = panel.core_dialog
    assert dialog.ours.text().split() == window.node.identity.fingerprint.split()
    assert dialog.theirs.text().split() == bob.identity.fingerprint.split()
    number = window.node.service("chat").verify(bob.identity.id)["safety_number"]
    assert "".join(dialog.safety.text().split()) == number and len(number) == 60
    assert bob.service("chat").verify(window.node.identity.id)["safety_number"] == number, "both sides read the same"
    assert dialog.cancel_button.isDefault()
    for control in (dialog.confirm_button, dialog.cancel_button):
        assert control.toolTip() and control.accessibleName()
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert cell(window, bob.identity.id, TIER) == "unknown"
    assert window.node.peers.get(bob.identity.id).tier == "unknown"
    assert panel.tier_actions["unknown"].isChecked() and not panel.tier_actions["core"].isChecked()
    # the same from the tier menu, and this time the person confirms
    panel.select_peer(bob.identity.id)
    panel.tier_actions["core"].trigger()
    qtbot.waitUntil(lambda: panel.core_dialog is not dialog and panel.core_dialog.isVisible())
    qtbot.mouseClick(panel.core_dialog.confirm_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "core")
    assert window.node.peers.get(bob.identity.id).tier == "core"


def test_enter_or_escape_in_the_core_dialog_keeps_the_tier(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    for key in (Qt.Key_Return, Qt.Key_Escape):
        panel.select_peer(bob.identity.id)
        panel.tier_actions["core"].trigger()
        dialog = panel.core_dialog
        qtbot.waitUntil(dialog.isVisible)
        qtbot.keyClick(dialog, key)
        qtbot.waitUntil(lambda d=dialog: not d.isVisible())
        assert window.node.peers.get(bob.identity.id).tier == "unknown"
        assert cell(window, bob.identity.id, TIER) == "unknown"


def test_the_verified_column_follows_the_safety_number_marked_in_chat(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    assert cell(window, bob.identity.id, VERIFIED) == "no"
    panel = window.peers_panel
    panel.select_peer(bob.identity.id)
    assert panel.details.verified.text().startswith("no")
    assert panel.details.connection.text() == "asymmetric, direct"
    window.node.service("chat").verify(bob.identity.id, mark=True)   # what the Chat tab's button calls
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, VERIFIED) == "✓ yes")
    assert panel.details.verified.text().startswith("yes")


def test_the_route_says_who_dialled(window, make_node, qtbot, run, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    assert cell(window, bob.identity.id, ROUTE) == "direct"
    carol = make_node("carol")
    run(carol.add_peer(address_of(window.node)))
    qtbot.waitUntil(lambda: cell(window, carol.identity.id, ROUTE) == "inbound")
    run(carol.stop())
    qtbot.waitUntil(lambda: cell(window, carol.identity.id, CONNECTED) == "no")
    assert cell(window, carol.identity.id, ROUTE) == "—"


def visible_names(panel) -> list[str]:
    shown = panel.table.model()
    return [shown.index(r, NAME).data() for r in range(shown.rowCount())]


def test_the_filter_field_shows_only_matching_peers(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    carol = connected_peer(window, make_node, qtbot, address_of, name="carol")
    panel = window.peers_panel
    qtbot.mouseClick(panel.filter, Qt.LeftButton)
    qtbot.keyClicks(panel.filter, "CAR")
    assert visible_names(panel) == ["carol"]
    panel.filter.clear()
    qtbot.keyClicks(panel.filter, bob.identity.id[20:30])   # a piece of the full id
    assert visible_names(panel) == ["bob"]
    panel.filter.clear()
    assert sorted(visible_names(panel)) == ["bob", "carol"]
    qtbot.keyClicks(panel.filter, "nobody-by-this-name")
    assert visible_names(panel) == []
    # selecting a hidden peer (after an add, say) clears the filter rather than select nothing
    assert panel.select_peer(carol.identity.id) and panel.filter.text() == ""
    assert panel.selected_peer()["id"] == carol.identity.id


def choose_from_button_menu(qtbot, button, action) -> None:
    """Click ``button`` and then ``action`` in the menu it pops up (the menu runs its own loop)."""
    menu = button.menu()

    def click_item():
        if not menu.isVisible():
            QTimer.singleShot(50, click_item)
            return
        qtbot.mouseClick(menu, Qt.LeftButton, pos=menu.actionGeometry(action).center())
    QTimer.singleShot(50, click_item)
    qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not menu.isVisible())


def test_copy_my_contact_link_and_add_a_peer_from_a_copied_link(window, make_node, qtbot, address_of):
    panel = window.peers_panel
    show_trust_tab(window, qtbot)
    QGuiApplication.clipboard().clear()
    choose_from_button_menu(qtbot, panel.link_button, panel.copy_link_action)
    ours = QGuiApplication.clipboard().text()
    assert ours.startswith("covey://") and ours.endswith("#" + window.node.identity.id)
    assert ours in window.statusBar().currentMessage()
    bob = make_node("bob")
    QGuiApplication.clipboard().setText(f"  covey://{address_of(bob)}#{bob.identity.id.upper()}\n")
    choose_from_button_menu(qtbot, panel.link_button, panel.paste_link_action)
    dialog = panel.add_dialog
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.address.text() == address_of(bob) and dialog.key.text() == bob.identity.id
    qtbot.keyClicks(dialog.name, "bob")
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, CONNECTED) == "yes")
    assert window.node.peers.get(bob.identity.id).pinned


def test_a_clipboard_without_a_link_says_so(window, qtbot):
    show_trust_tab(window, qtbot)
    QGuiApplication.clipboard().setText("hello")
    assert window.peers_panel.add_from_clipboard() is None
    assert "no contact link" in window.statusBar().currentMessage()
    assert QApplication.activeModalWidget() is None


def right_click(panel, peer_id: str):
    """A person's right click on the peer's row: Qt delivers it as a context-menu event."""
    index = panel._view_index(panel.model.row_of(peer_id))
    pos = panel.table.visualRect(index).center()
    viewport = panel.table.viewport()
    QApplication.sendEvent(viewport, QContextMenuEvent(QContextMenuEvent.Mouse, pos, viewport.mapToGlobal(pos)))
    return panel.context_menu


def test_the_context_menu_bans_and_sets_tiers(window, make_node, qtbot, address_of):
    bob = connected_peer(window, make_node, qtbot, address_of)
    panel = window.peers_panel
    panel.table.clearSelection()
    menu = right_click(panel, bob.identity.id)
    qtbot.waitUntil(menu.isVisible)
    assert panel.selected_peer()["id"] == bob.identity.id
    texts = {a.text(): a for a in menu.actions()}
    assert texts["Unban"].isEnabled() is False and texts["Ban"].isEnabled()
    menu.hide()
    panel.tier_actions["external"].trigger()
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "external")
    menu = right_click(panel, bob.identity.id)
    qtbot.waitUntil(menu.isVisible)
    {a.text(): a for a in menu.actions()}["Ban"].trigger()
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "banned")


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
    qtbot.keyClick(panel.table, Qt.Key_Delete)   # the keyboard way to Remove…
    assert panel.confirm_box is not box and panel.confirm_box.isVisible()
    qtbot.mouseClick(panel.confirm_box.button(QMessageBox.Yes), Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.model.row_of(bob.identity.id) < 0)
    assert window.node.peers.get(bob.identity.id) is None
    assert panel.empty.isVisibleTo(panel)   # the hint, on the Trust tab (maybe not the current tab)


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


def cut_or_hidden(panel) -> list[str]:
    """Buttons of the tab that are off screen or narrower than their text."""
    from PySide6.QtWidgets import QAbstractButton
    wrong = []
    tab = panel.rect()
    for button in panel.findChildren(QAbstractButton):
        if not button.isVisibleTo(panel) or button.metaObject().className() == "QLineEditIconButton":
            continue
        box = button.geometry().translated(button.parentWidget().mapTo(panel, button.geometry().topLeft())
                                           - button.geometry().topLeft())
        if not tab.contains(box):
            wrong.append(f"{button.text()!r} at {box.getRect()} outside {tab.getRect()}")
        if button.width() < button.fontMetrics().horizontalAdvance(button.text().replace("&", "")):
            wrong.append(f"{button.text()!r} is {button.width()} px wide")
    return wrong


def test_the_trust_tab_renders_and_fits_from_900x600(window, make_node, run, qtbot, address_of, artifacts):
    populate(window, make_node, run, qtbot, address_of)
    panel = window.peers_panel
    show_trust_tab(window, qtbot)
    for width, height in ((1200, 800), (900, 600)):
        window.resize(width, height)
        QApplication.processEvents()
        assert window.grab().save(str(artifacts / f"trust-tab-{width}x{height}.png"))
        assert cut_or_hidden(panel) == []
    model = panel.model
    texts = {model.peer(r)["name"]: [model.index(r, c).data() for c in (TIER, VERIFIED, MODE)]
             for r in range(model.rowCount())}
    assert texts["mallory"] == ["banned", "no", "—"]
    assert texts["bob-laptop"] == ["core", "✓ yes", "asymmetric"]
    assert texts["erin-nas"][2] == "—"
    panel.select_peer(panel.model.peer(panel.model.row_of(
        next(p["id"] for p in window.node.list_peers() if p["name"] == "dave")))["id"])
    dialog = panel.request_tier(panel.selected_peer()["id"], "core")
    qtbot.waitUntil(dialog.isVisible)
    QApplication.processEvents()
    assert dialog.grab().save(str(artifacts / "trust-core-confirm.png"))
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)


def test_peer_events_change_rows_without_resetting_the_model(window, make_node, qtbot, run, address_of):
    panel = window.peers_panel
    resets, changed = [], []
    panel.model.modelReset.connect(lambda: resets.append(1))
    panel.model.dataChanged.connect(lambda top, bottom, *_: changed.append((top.row(), bottom.row())))
    bob = connected_peer(window, make_node, qtbot, address_of)
    carol = connected_peer(window, make_node, qtbot, address_of, name="carol")
    panel.select_peer(bob.identity.id)
    panel.tier_actions["external"].trigger()
    qtbot.waitUntil(lambda: cell(window, bob.identity.id, TIER) == "external")
    run(carol.stop())
    qtbot.waitUntil(lambda: cell(window, carol.identity.id, CONNECTED) == "no")
    assert resets == []
    assert changed and all(top == bottom for top, bottom in changed), "one row at a time"
    assert panel.selected_peer()["id"] == bob.identity.id, "the selection stays on its peer"
