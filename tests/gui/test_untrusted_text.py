"""Text that comes from peers (their announced names) is shown as text, never rendered as markup."""
from PySide6.QtCore import Qt

from desktop.peers.peers_model import NAME

EVIL = '<img src="file:///etc/passwd"><b>mallory</b>'


def test_a_peer_name_with_markup_is_shown_literally(window, make_node, qtbot, address_of, run):
    mallory = make_node(EVIL, mode="none", min_mode="none")
    run(window.node.update_settings(mode="none", min_mode="none"))
    run(mallory.add_peer(address_of(window.node)))
    qtbot.waitUntil(lambda: window.node.connected_peers() == [mallory.identity.id])
    model = window.peers_panel.model
    qtbot.waitUntil(lambda: model.row_of(mallory.identity.id) >= 0)
    row = model.row_of(mallory.identity.id)
    assert model.data(model.index(row, NAME)) == EVIL

    window.peers_panel.table.selectRow(row)
    details = window.peers_panel.details
    qtbot.waitUntil(lambda: details.isVisibleTo(window.peers_panel))   # on the Trust tab
    assert EVIL in details.title()
    for label in (details.peer_id, details.address, details.key, details.tier):
        assert label.textFormat() == Qt.PlainText

    banner = window.banner
    banner.refresh()
    assert banner.isVisible()
    html = banner.text.text()
    assert "&lt;img" in html and "<img" not in html
    assert "&lt;b&gt;mallory&lt;/b&gt;" in html
