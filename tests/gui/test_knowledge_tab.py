"""The Knowledge tab, driven as a person does, against real nodes on 127.0.0.1."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from core.knowledge import protocol as proto
from desktop.knowledge.knowledge_model import (AUTHOR, FAILED, RECHECKED, SIGNED, TAGS, TIER, TITLE,
                                               VERIFIED)


def open_tab(window, qtbot):
    """Click the Knowledge tab in the tab bar; returns the panel."""
    bar = window.tabs.tabBar()
    index = next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "Knowledge")
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(index).center())
    qtbot.waitUntil(lambda: window.tabs.currentWidget() is window.knowledge_panel)
    return window.knowledge_panel


def visible_rows(panel) -> list[dict]:
    """What the table shows, row by row (after the filter)."""
    proxy = panel.proxy
    return [{column: proxy.data(proxy.index(r, column)) for column in (TITLE, AUTHOR, TIER, VERIFIED, TAGS)}
            | {"id": proxy.data(proxy.index(r, 0), Qt.UserRole)} for r in range(proxy.rowCount())]


def click_row(panel, qtbot, packet_id: str) -> None:
    proxy, model = panel.proxy, panel.model
    index = proxy.mapFromSource(model.index(model.row_of(packet_id), TITLE))
    assert index.isValid(), "the packet is not visible"
    qtbot.mouseClick(panel.table.viewport(), Qt.LeftButton, pos=panel.table.visualRect(index).center())
    qtbot.waitUntil(lambda: panel.details.packet_id == packet_id)


@pytest.fixture
def bob(window, make_node, run, address_of, qtbot):
    """A second node, CORE for alice and alice CORE for it."""
    alice = window.node
    other = make_node("bob")
    run(other.add_peer(address_of(alice)))
    qtbot.waitUntil(lambda: other.identity.id in alice.connections)
    alice.trust(other.identity.id, "core")
    other.trust(alice.identity.id, "core")
    return other


def test_publish_a_text_by_typing_and_clicking(window, bob, qtbot):
    panel = open_tab(window, qtbot)
    form = panel.publish_box
    qtbot.keyClicks(form.title, "Meeting notes")
    form.kind.clear()
    qtbot.keyClicks(form.kind, "minutes")
    qtbot.keyClicks(form.tags, "team, Weekly")
    qtbot.keyClicks(form.text, "We agreed on the plan.")
    qtbot.mouseClick(form.text_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 1)
    row = visible_rows(panel)[0]
    assert row[TITLE] == "Meeting notes" and row[AUTHOR] == "this node" and row[TIER] == "this node"
    assert row[TAGS] == "team, weekly" and row[VERIFIED] in (SIGNED, RECHECKED)
    assert "sent to 1 CORE peer" in window.statusBar().currentMessage()
    assert form.text.toPlainText() == "" and form.title.text() == ""      # ready for the next one
    assert panel.details.packet_id == row["id"]                            # the new packet is shown
    assert "Signature valid" in panel.details.signature.text()
    qtbot.waitUntil(lambda: bob.service("knowledge").db.has(row["id"]))   # and it went to the CORE peer


def test_an_empty_text_is_refused_in_the_form(window, qtbot):
    panel = open_tab(window, qtbot)
    qtbot.mouseClick(panel.publish_box.text_button, Qt.LeftButton)
    assert panel.publish_box.error.isVisible() and "Write a text first" in panel.publish_box.error.text()
    assert visible_rows(panel) == []


def test_a_peers_packet_appears_and_its_details_show_the_signature_check(window, bob, run, qtbot):
    panel = open_tab(window, qtbot)
    packet = run(bob.service("knowledge").publish(text="from bob's lab", title="Lab results", tags=["lab"]))
    qtbot.waitUntil(lambda: [r["id"] for r in visible_rows(panel)] == [packet["id"]])
    row = visible_rows(panel)[0]
    assert row[AUTHOR] == "bob" and row[TIER] == "core" and row[VERIFIED] == SIGNED
    click_row(panel, qtbot, packet["id"])
    details = panel.details
    assert details.signature.text().startswith("✓ Signature valid: signed by bob")
    assert bob.identity.fingerprint in details.signature.text()
    assert details.preview.toPlainText() == "from bob's lab"
    assert bob.identity.id[:16] in details.facts.text() and details.export_button.isEnabled()
    assert visible_rows(panel)[0][VERIFIED] == RECHECKED
    # the counters show what came from bob
    counters = panel.counters
    names = [counters.cell_text(r, 0) for r in range(counters.rowCount())]
    assert names[-1] == "Total" and "bob" in names
    assert counters.cell_text(names.index("bob"), 3) == "1"        # accepted


def test_a_damaged_stored_packet_shows_the_failed_check_and_cannot_be_exported(window, run, qtbot):
    panel = open_tab(window, qtbot)
    service = window.node.service("knowledge")
    packet = run(service.publish(text="soon damaged", title="Damaged"))
    raw = service.db.get(packet["id"]).raw
    envelope = proto.decode(raw).envelope
    forged = raw.replace(envelope["sig"], bytes(64))
    window.node.store.execute("UPDATE know_packets SET raw = ? WHERE id = ?", (forged, packet["id"]))
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 1)
    click_row(panel, qtbot, packet["id"])
    assert panel.details.signature.text().startswith("✗ Signature check failed")
    assert "does not match its bytes" in panel.details.signature.text()
    assert visible_rows(panel)[0][VERIFIED] == FAILED
    assert not panel.details.export_button.isEnabled()


def test_the_filter_keeps_only_matching_rows(window, bob, run, qtbot):
    panel = open_tab(window, qtbot)
    ours = run(window.node.service("knowledge").publish(text="a", title="Recipe", tags=["cooking"]))
    theirs = run(bob.service("knowledge").publish(text="b", title="Benchmarks", tags=["perf"]))
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 2)
    qtbot.keyClicks(panel.filter, "bob")
    assert [r["id"] for r in visible_rows(panel)] == [theirs["id"]]
    panel.filter.clear()
    qtbot.keyClicks(panel.filter, "COOK")
    assert [r["id"] for r in visible_rows(panel)] == [ours["id"]]
    panel.filter.clear()
    assert len(visible_rows(panel)) == 2


def test_publish_a_file_through_the_file_dialog(window, bob, qtbot, tmp_path, monkeypatch):
    panel = open_tab(window, qtbot)
    chosen = tmp_path / "report.pdf"
    chosen.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 40)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(chosen), ""))
    qtbot.keyClicks(panel.publish_box.tags, "reports")
    qtbot.mouseClick(panel.publish_box.file_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 1)
    row = panel.model.rows[0]
    assert row["filename"] == "report.pdf" and row["media_type"] == "application/pdf"
    assert row["size"] == chosen.stat().st_size and row["tags"] == ["reports"]
    assert visible_rows(panel)[0][TITLE] == "report.pdf"
    qtbot.waitUntil(lambda: bob.service("knowledge").db.has(row["id"]))


def test_a_file_over_16_mib_is_refused_with_the_reason(window, qtbot, tmp_path, monkeypatch):
    panel = open_tab(window, qtbot)
    big = tmp_path / "huge.iso"
    with big.open("wb") as f:
        f.truncate(proto.MAX_FILE_BYTES + 1)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(big), ""))
    qtbot.mouseClick(panel.publish_box.file_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.publish_box.error.isVisible())
    assert "16 MiB" in panel.publish_box.error.text() and "huge.iso" in panel.publish_box.error.text()
    assert "Could not publish the file" in window.statusBar().currentMessage()
    assert visible_rows(panel) == [] and panel.publish_box.file_button.isEnabled()


def test_cancelling_the_file_dialog_publishes_nothing(window, qtbot, monkeypatch):
    panel = open_tab(window, qtbot)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    qtbot.mouseClick(panel.publish_box.file_button, Qt.LeftButton)
    qtbot.wait(50)
    assert visible_rows(panel) == [] and not panel.publish_box.error.isVisible()


def test_export_writes_the_content_where_the_person_chose(window, run, qtbot, tmp_path, monkeypatch):
    panel = open_tab(window, qtbot)
    packet = run(window.node.service("knowledge").publish(data=b"\x00\x01 data", filename="blob.bin",
                                                          title="A blob"))
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 1)
    click_row(panel, qtbot, packet["id"])
    target = tmp_path / "out" / "saved.bin"
    target.parent.mkdir()
    offered = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, caption, name: offered.append(name) or (str(target), ""))
    qtbot.mouseClick(panel.details.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: target.exists())
    assert target.read_bytes() == b"\x00\x01 data" and offered == ["blob.bin"]
    qtbot.waitUntil(lambda: "Saved" in window.statusBar().currentMessage())
    assert str(target) in window.statusBar().currentMessage()


def test_rejected_packets_show_in_the_counters(window, bob, run, qtbot):
    panel = open_tab(window, qtbot)
    packet = proto.create(bob.identity, 1, text="id will not match")
    with pytest.raises(Exception, match="does not match its bytes"):
        run(bob.request(window.node.identity.id, "know.push", {"id": "0" * 64, "packet": packet.raw, "hops": 1}))
    counters = panel.counters

    def rejected_for_bob():
        names = [counters.cell_text(r, 0) for r in range(counters.rowCount())]
        return "bob" in names and counters.cell_text(names.index("bob"), 5) == "1"
    qtbot.waitUntil(rejected_for_bob)
    row = [counters.cell_text(r, 0) for r in range(counters.rowCount())].index("bob")
    assert "id_mismatch: 1" in counters.item(row, 5).toolTip()


def test_the_tab_renders_with_real_data(window, bob, make_node, run, address_of, qtbot, tmp_path, artifacts):
    """Offscreen render with packets from this node, a CORE and a SANDBOX peer; a human looks at the PNG."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication
    alice = window.node
    carol = make_node("carol-lab")
    run(carol.add_peer(address_of(alice), name="alice"))
    qtbot.waitUntil(lambda: carol.identity.id in alice.connections)
    alice.trust(carol.identity.id, "sandbox")
    carol.trust(alice.identity.id, "core")
    ours = alice.service("knowledge")
    run(ours.publish(text="Agenda: keys, backups, the next training run.", title="Weekly sync agenda",
                     kind="minutes", tags=["team", "weekly"]))
    run(ours.publish(data=b"\x89PNG" + bytes(30_000), filename="topology.png", title="Network topology",
                     kind="diagram", tags=["infra"]))
    run(bob.service("knowledge").publish(text="MLP on digits: 0.962 after 10 rounds with Krum.",
                                         title="Federated run results", kind="report", tags=["ml", "results"]))
    run(carol.service("knowledge").publish(text="Untested idea: prune the CNN before round 3.",
                                           title="Pruning idea", tags=["ml"]))
    panel = open_tab(window, qtbot)
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 4)
    window.resize(1400, 860)
    bob_packet = next(r["id"] for r in panel.model.rows if r["title"] == "Federated run results")
    click_row(panel, qtbot, bob_packet)
    panel.refresh_counters()
    QApplication.processEvents()
    path = artifacts / "knowledge-tab.png"
    assert window.grab().save(str(path))
    image = QImage(str(path))
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert image.width() >= 1000 and len(colors) > 20
    tiers = {r[TITLE]: r[TIER] for r in visible_rows(panel)}
    assert tiers == {"Weekly sync agenda": "this node", "Network topology": "this node",
                     "Federated run results": "core", "Pruning idea": "sandbox (not relayed)"}


def test_with_a_packet_shown_every_control_is_named_and_fits_900_by_600(window, bob, qtbot):
    from desktop.knowledge.knowledge_model import TITLE
    from tests.gui.test_layout_fit import SMALL, cut_headers, cut_labels, hidden_buttons, interactive, settle
    panel = open_tab(window, qtbot)
    form = panel.publish_box
    qtbot.keyClicks(form.title, "Plan")
    qtbot.keyClicks(form.text, "A longer text so the preview has something to show.")
    qtbot.mouseClick(form.text_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(visible_rows(panel)) == 1)
    click_row(panel, qtbot, visible_rows(panel)[0]["id"])
    settle(window, qtbot, SMALL)
    assert panel.details.preview.isVisible() and panel.details.export_button.isEnabled()
    controls = interactive(panel)
    assert len(controls) >= 10
    for widget in controls:
        assert widget.toolTip() and widget.accessibleName(), widget
    assert not cut_labels(panel) and not hidden_buttons(panel) and not cut_headers(panel)
    # the facts (ids in monospace) are never cut: a narrow details pane scrolls
    assert panel.table.columnWidth(TITLE) >= 150, "the title is what people read: it keeps a width"
