"""The Tasks tab against real nodes on 127.0.0.1: alice's window delegates to bob, bob to alice."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

RUN_MS = 60000


@pytest.fixture
def tab(window, make_node, run, qtbot, address_of):
    """alice's Tasks tab, with bob connected and holding alice as CORE."""
    alice = window.node
    bob = make_node("bob")
    run(alice.add_peer(address_of(bob), name="bob"))
    qtbot.waitUntil(lambda: alice.identity.id in bob.connections, timeout=10000)
    bob.trust(alice.identity.id, "core")
    panel = window.tasks_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.form.peer.count() == 1, timeout=5000)
    panel.bob = bob
    return panel


def choose(panel, kind: str):
    form = panel.form
    form.type.setCurrentIndex(form.type.findData(kind))
    QApplication.processEvents()
    assert form.forms.currentWidget() is form.by_type[kind] and form.summary.text()
    return form.by_type[kind]


def click_run(panel, qtbot, rows_before: int):
    qtbot.mouseClick(panel.form.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.table.rowCount() == rows_before + 1 and panel.form.run_button.isEnabled()
                    and panel.rows[0]["state"] != "sent", timeout=RUN_MS)


def cell(panel, row: int, column: str) -> str:
    from desktop.tasks.tasks_panel import COLUMNS
    return panel.table.item(row, COLUMNS.index(column)).text()


def test_every_task_type_runs_from_its_form_with_a_verified_proof(tab, qtbot, tmp_path, monkeypatch):
    from core.learning import tensors
    from core.learning.models import build_model, get_weights
    panel = tab
    assert panel.form.peer.currentText().startswith("bob") and panel.form.run_button.isEnabled()
    assert "runs tasks for CORE peers: 0 running" in panel.executor.text()

    form = choose(panel, "echo")
    qtbot.keyClicks(form.fields["text"], "hello from the tab")
    click_run(panel, qtbot, 0)
    assert "echo on bob: done, proof verified ✓" in panel.outcome.text()
    assert "hello from the tab" in panel.outcome.text()

    form = choose(panel, "dataset.digest")
    assert [form.fields["dataset"].itemText(i) for i in range(form.fields["dataset"].count())] == ["digits", "synthetic"]
    click_run(panel, qtbot, 1)
    assert '"rows": 1797' in panel.outcome.text()

    form = choose(panel, "dataset.stats")
    form.fields["dataset"].setCurrentText("synthetic")
    qtbot.keyClicks(form.fields["column"], "label")
    form.fields["bins"].setValue(4)
    click_run(panel, qtbot, 2)
    assert '"count": 2000' in panel.outcome.text()

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(tensors.encode(get_weights(build_model("mlp", 64, 10, (8, 8), seed=3, hidden=8))))
    form = choose(panel, "model.evaluate")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(weights), ""))
    qtbot.mouseClick(form.browse["weights"], Qt.LeftButton)
    assert form.fields["weights"].text() == str(weights)
    form.fields["hidden"].setValue(8)
    panel.form.timeout.setValue(120)
    click_run(panel, qtbot, 3)
    assert '"rows": 360' in panel.outcome.text()

    form = choose(panel, "bench.probe")
    form.fields["ms"].setValue(20)
    qtbot.mouseClick(panel.form.http, Qt.LeftButton)        # the same over plain HTTP
    assert panel.form.http.isChecked()
    click_run(panel, qtbot, 4)
    assert "bench.probe on bob: done, proof verified ✓" in panel.outcome.text()

    assert [cell(panel, r, "Type") for r in range(5)] == ["bench.probe", "model.evaluate", "dataset.stats",
                                                           "dataset.digest", "echo"]
    for r in range(5):
        assert cell(panel, r, "State") == "done" and cell(panel, r, "Proof") == "verified ✓"
        assert cell(panel, r, "Role") == "sent" and cell(panel, r, "Peer") == "bob"
        assert cell(panel, r, "Wall s") != "—"   # measured (a number, or <0.001)
    assert panel.rows[0]["via"] == "http"

    panel.table.selectRow(4)
    text = panel.details.toPlainText()
    assert "proof verified: signed by the executor" in text and panel.bob.identity.id in text
    assert '"text": "hello from the tab"' in text and "https://in-toto.io/Statement/v1" in text


def test_a_refusal_is_shown_in_words_and_listed(tab, qtbot):
    panel = tab
    panel.bob.trust(panel.node.identity.id, "sandbox")
    form = choose(panel, "echo")
    qtbot.keyClicks(form.fields["text"], "may I?")
    click_run(panel, qtbot, 0)
    expected = "refused by policy: only CORE peers may delegate tasks to this node; you are SANDBOX"
    assert panel.form.error.isVisible() and expected in panel.form.error.text()
    assert expected in panel.outcome.text()
    assert cell(panel, 0, "State") == "refused" and cell(panel, 0, "Proof") == "—"
    panel.table.selectRow(0)
    assert "proof NOT verified" in panel.details.toPlainText()


def test_a_field_that_cannot_be_read_is_named_before_anything_is_sent(tab, qtbot):
    panel = tab
    form = choose(panel, "dataset.stats")
    qtbot.keyClicks(form.fields["column"], "third")
    qtbot.mouseClick(panel.form.run_button, Qt.LeftButton)
    assert "Cannot run the task: column: 'third' is not a column index or label" in panel.form.error.text()
    assert panel.table.rowCount() == 0


def test_tasks_served_for_a_peer_appear_without_a_click(tab, qtbot, run, artifacts):
    panel = tab
    alice, bob = panel.node, panel.bob
    alice.trust(bob.identity.id, "core")
    run(bob.service("delegation").run(alice.identity.id, "echo", {"text": "bob asks alice"}))
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)
    assert cell(panel, 0, "Role") == "served" and cell(panel, 0, "State") == "done"
    assert cell(panel, 0, "Proof") == "verified ✓" and cell(panel, 0, "Peer") == "bob"
    form = choose(panel, "echo")
    qtbot.keyClicks(form.fields["text"], "and alice asks bob")
    click_run(panel, qtbot, 1)
    panel.table.selectRow(1)
    panel.window().resize(1280, 860)
    QApplication.processEvents()
    assert panel.window().grab().save(str(artifacts / "tasks_tab.png"))


def test_a_failed_task_says_where_its_proof_is_in_the_tabs_words(tab, qtbot):
    from desktop.wording import speaks_cli
    panel = tab
    form = choose(panel, "dataset.stats")
    qtbot.keyClicks(form.fields["column"], "999")   # digits has 64 columns: the executor fails the task
    click_run(panel, qtbot, 0)
    assert cell(panel, 0, "State") == "failed" and cell(panel, 0, "Proof") == "verified ✓"
    for text in (panel.form.error.text(), panel.outcome.text(), panel.window().statusBar().currentMessage()):
        assert "the proof is signed and verified: select it in the list below" in text, text
        assert not speaks_cli(text), text


def test_every_task_type_fits_900_by_600_with_named_fields(tab, qtbot):
    from tests.gui.test_layout_fit import SMALL, cut_labels, hidden_buttons, settle, sideways_scrolling
    panel = tab
    window = panel.window()
    for index in range(panel.form.type.count()):
        kind = panel.form.type.itemData(index)
        form = choose(panel, kind)
        settle(window, qtbot, SMALL)
        hint = panel.minimumSizeHint()
        assert hint.height() <= SMALL[1] - 100 and hint.width() <= SMALL[0] - 20, (kind, hint)
        assert not cut_labels(panel) and not sideways_scrolling(panel) and not hidden_buttons(panel), kind
        for name, widget in form.fields.items():
            assert widget.toolTip() and widget.accessibleName(), (kind, name)
        for button in form.browse.values():
            assert button.toolTip() and button.accessibleName(), kind
