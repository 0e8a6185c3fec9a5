"""The Training tab against real nodes on 127.0.0.1: a coordinator in the window, workers beside it."""
from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtWidgets import QApplication

from core.learning.protocol import SECAGG_AGGREGATOR

ROUND_MS = 60000


def federation(coord, make_node, run, qtbot, address_of, n: int = 3, auto_join: bool = True):
    """``n`` worker nodes connected to ``coord``, trusted as CORE both ways."""
    workers = []
    for i in range(n):
        worker = make_node(f"w{i}")
        worker.service("learning").auto_join = auto_join
        run(worker.add_peer(address_of(coord)))
        worker.trust(coord.identity.id, "core")
        workers.append(worker)
    qtbot.waitUntil(lambda: len(coord.connected_peers()) == n, timeout=10000)
    for worker in workers:
        coord.trust(worker.identity.id, "core")
    return workers


def training_tab(window):
    panel = window.training_panel
    window.tabs.setCurrentWidget(panel)
    QApplication.processEvents()
    return panel


def fill_form(form, rounds=3, aggregator="fedavg", min_clients=3, attack=None, attackers=0, dp=False):
    form.rounds.setValue(rounds)
    form.aggregator.setCurrentIndex(form.aggregator.findData(aggregator))
    form.min_clients.setValue(min_clients)
    form.attack.setCurrentIndex(form.attack.findData(attack))
    form.attackers.setValue(attackers)
    form.dp_noise.setValue(1.0 if dp else 0.0)


def run_to_the_end(panel, qtbot):
    qtbot.mouseClick(panel.form.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.task is not None, timeout=20000)
    qtbot.waitUntil(lambda: panel.state in ("done", "failed", "stopped"), timeout=ROUND_MS)
    return panel.node.service("learning").tasks[panel.task]


class RoundRecorder(QObject):
    """Registered after the panel, so it sees what the panel shows right after each ml_round."""

    def __init__(self, panel):
        super().__init__()
        self.panel = panel
        self.seen = []

    def on_event_ml_round(self, event):
        x, _ = self.panel.charts.curves["accuracy"].getData()
        self.seen.append((event.data["round"], self.panel.progress.value(), len(x)))


def test_the_app_does_not_import_pyqtgraph_until_the_training_tab_is_shown(window):
    probe = "import sys, desktop.window, desktop.training.training_panel; print('pyqtgraph' in sys.modules)"
    fresh = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "False"
    panel = window.training_panel
    assert panel.charts is None and not panel.charts_holder.isVisible()
    assert window.tabs.indexOf(panel) >= 0 and window.tabs.tabText(window.tabs.indexOf(panel)) == "Training"
    training_tab(window)
    assert panel.charts is not None and panel.charts.isVisible()


def test_start_runs_rounds_live_into_the_progress_bar_plots_and_worker_table(window, make_node, run, qtbot,
                                                                             address_of):
    workers = federation(window.node, make_node, run, qtbot, address_of)
    panel = training_tab(window)
    recorder = RoundRecorder(panel)
    window.bridge.register(recorder)
    fill_form(panel.form, rounds=3)
    task = run_to_the_end(panel, qtbot)

    assert task.state == "done" and panel.state == "done"
    assert recorder.seen == [(1, 1, 1), (2, 2, 2), (3, 3, 3)], "each round redrew the bar and the plots"
    assert (panel.progress.value(), panel.progress.maximum()) == (3, 3)
    assert panel.progress.format() == "Round 3 / 3"
    assert panel.eta.text() == "Finished" and "finished" in panel.title.text()
    curves = panel.charts.curves
    x, accuracy = curves["accuracy"].getData()
    assert list(x) == [1, 2, 3]
    assert list(accuracy) == pytest.approx([h["accuracy"] for h in task.history])
    assert list(curves["loss"].getData()[1]) == pytest.approx([h["loss"] for h in task.history])
    assert list(curves["accepted"].getData()[1]) == [3, 3, 3]
    assert list(curves["rejected"].getData()[1]) == [0, 0, 0]
    assert curves["epsilon"].getData()[0] is None or len(curves["epsilon"].getData()[0]) == 0
    assert not panel.charts.epsilon_plot.isVisible()
    assert f"test accuracy {task.history[-1]['accuracy']:.3f}" in panel.metrics.text()

    rows = panel.workers.rows()
    assert sorted(r["Peer"] for r in rows) == sorted(w.identity.name for w in workers)
    assert all(r["Status"] == "accepted" and r["Role"] == "honest" for r in rows)
    assert all(float(r["Update norm"]) > 0 for r in rows)
    assert panel.form.start_button.isEnabled() and not panel.form.stop_button.isEnabled()


def test_robust_aggregation_rejecting_an_attacker_shows_in_the_worker_table(window, make_node, run, qtbot,
                                                                            address_of):
    workers = federation(window.node, make_node, run, qtbot, address_of)
    panel = training_tab(window)
    fill_form(panel.form, rounds=3, aggregator="median", min_clients=2, attack="sign_flip", attackers=1)
    task = run_to_the_end(panel, qtbot)

    assert task.state == "done"
    rows = {r["Peer"]: r for r in panel.workers.rows()}
    attacker = next(p for p, s in task.participants.items() if s == 0)
    attacker_name = window.node.peers.get(attacker).name
    assert rows[attacker_name]["Role"] == "attacker: sign flip"
    assert rows[attacker_name]["Status"].startswith("rejected")
    honest = [r for name, r in rows.items() if name != attacker_name]
    assert len(honest) == len(workers) - 1 and all(r["Status"] == "accepted" for r in honest)
    assert list(panel.charts.curves["rejected"].getData()[1]) == [h["rejected"] for h in task.history]
    assert all(h["rejected"] >= 1 for h in task.history), [(h["round"], h["accepted"], h["rejected"], h["missing"], h["workers"]) for h in task.history]


def test_differential_privacy_adds_the_epsilon_chart(window, make_node, run, qtbot, address_of, artifacts):
    federation(window.node, make_node, run, qtbot, address_of, n=2)
    panel = training_tab(window)
    fill_form(panel.form, rounds=3, min_clients=2, dp=True)
    task = run_to_the_end(panel, qtbot)

    assert task.state == "done" and panel.charts.epsilon_plot.isVisible()
    x, epsilon = panel.charts.curves["epsilon"].getData()
    assert list(x) == [1, 2, 3] and list(epsilon) == pytest.approx([h["epsilon"] for h in task.history])
    assert all(b > a > 0 for a, b in zip(epsilon, epsilon[1:])), "privacy spent grows every round"
    assert "ε" in panel.metrics.text()
    assert window.grab().save(str(artifacts / "training-tab-dp.png"))


def test_stop_stops_a_running_task_and_says_so(window, make_node, run, qtbot, address_of):
    federation(window.node, make_node, run, qtbot, address_of, n=2)
    panel = training_tab(window)
    fill_form(panel.form, rounds=200, min_clients=2)
    qtbot.mouseClick(panel.form.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "running" and panel.progress.value() >= 1, timeout=ROUND_MS)
    assert panel.form.stop_button.isEnabled() and not panel.form.start_button.isEnabled()
    assert panel.eta.text().startswith("about ") and panel.eta.text().endswith(" left")

    qtbot.mouseClick(panel.form.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "stopped", timeout=20000)
    task = window.node.service("learning").tasks[panel.task]
    assert task.state == "stopped" and task.round < 200
    assert panel.eta.text() == "Stopped" and "stopped" in panel.title.text()
    assert panel.progress.format() == f"Round {task.round} / 200"
    assert not panel.form.stop_button.isEnabled() and panel.form.start_button.isEnabled()
    assert f"stopped at round {task.round}" in window.statusBar().currentMessage()


def training_tab_by_click(window, qtbot):
    """Show the Training tab by clicking its title, as a person does."""
    panel = window.training_panel
    bar = window.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(window.tabs.indexOf(panel)).center())
    qtbot.waitUntil(lambda: window.tabs.currentWidget() is panel)
    return panel


def type_value(qtbot, box, text: str) -> None:
    """Select a spin box's text and type a new value, as a person does."""
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key_Tab)


def test_with_too_few_workers_the_tab_says_at_once_how_many_there_are_and_are_needed(
        window, make_node, run, qtbot, address_of):
    panel = training_tab_by_click(window, qtbot)
    form = panel.form
    assert form.workers_line.text().startswith("0 eligible workers connected; a round needs 2")
    federation(window.node, make_node, run, qtbot, address_of, n=1)
    qtbot.waitUntil(lambda: form.workers_line.text().startswith("1 eligible worker connected; a round needs 2"))
    assert "lower Min. clients" in form.workers_line.text() and form.workers_line.objectName() == "error"
    assert form.min_clients.value() == 2 and form.deadline.value() == 60   # the defaults a new user keeps
    qtbot.mouseClick(form.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.task is not None, timeout=20000)
    # at once, not after the 60 s round deadline: the retry (panel.detail) has not come yet
    qtbot.waitUntil(lambda: "1 eligible worker connected and joined" in panel.waiting.text(), timeout=20000)
    assert panel.waiting.isVisible()
    assert not panel.detail.isVisible(), "this test must see the line before the first retry"
    assert panel.waiting.text().startswith(
        "Waiting for workers: 1 eligible worker connected and joined, 2 needed (Min. clients).")
    assert "retried every 60 s (Round deadline)" in panel.waiting.text()
    assert panel.eta.text() == "waiting for workers" and panel.progress.format() == "Round 0 / 10"
    # a second worker arrives: the line goes and the round runs
    second = make_node("w-late")
    second.service("learning").auto_join = True
    run(second.add_peer(address_of(window.node)))
    second.trust(window.node.identity.id, "core")
    qtbot.waitUntil(lambda: second.identity.id in window.node.connected_peers(), timeout=10000)
    window.node.trust(second.identity.id, "core")
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=ROUND_MS)
    assert not panel.waiting.isVisible()
    assert form.workers_line.text().startswith("2 eligible workers connected; a round needs 2.")
    qtbot.mouseClick(form.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "stopped", timeout=20000)


def test_the_round_deadline_is_a_field_of_the_form(window, make_node, run, qtbot, address_of):
    federation(window.node, make_node, run, qtbot, address_of, n=1)
    panel = training_tab_by_click(window, qtbot)
    form = panel.form
    assert form.deadline.accessibleName() == "Round deadline" and form.deadline.toolTip()
    type_value(qtbot, form.deadline, "1")
    assert form.deadline.value() == 1 and form.options()["deadline"] == 1.0
    qtbot.mouseClick(form.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.task is not None, timeout=20000)
    assert window.node.service("learning").tasks[panel.task].spec.deadline == 1.0
    # with a 1 s deadline the retry comes soon, and says why in the core's words
    qtbot.waitUntil(lambda: panel.detail.isVisible(), timeout=20000)
    assert panel.detail.text().startswith("Round 1 will be retried: ") and "2 needed" in panel.detail.text()
    assert panel.waiting.isVisible() and "every 1 s" in panel.waiting.text()
    qtbot.mouseClick(form.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "stopped", timeout=20000)


def test_secure_aggregation_with_a_robust_rule_is_refused_in_the_forms_words(window, qtbot):
    from desktop.wording import speaks_cli
    panel = training_tab_by_click(window, qtbot)
    form = panel.form
    assert not form.refusal.isVisible() and form.start_button.isEnabled()
    form.aggregator.setCurrentIndex(form.aggregator.findData("krum"))
    box = form.secure_agg   # click its box (a wide check box only takes clicks on its box and text)
    qtbot.mouseClick(box, Qt.LeftButton, pos=QPoint(8, box.height() // 2))
    assert form.secure_agg.isChecked() and form.refusal.isVisible()
    assert form.refusal.text() == ("Secure aggregation hides every single update from the coordinator, so it "
                                   "cannot run Krum, which must look at each update: choose FedAvg or FedProx "
                                   "as the Aggregator, or turn Secure aggregation off")
    assert not form.start_button.isEnabled()
    assert "3" in form.workers_line.text(), "secure aggregation needs at least 3 workers"
    form.aggregator.setCurrentIndex(form.aggregator.findData("fedavg"))
    assert not form.refusal.isVisible() and form.start_button.isEnabled()
    assert window.node.service("learning").tasks == {}
    assert speaks_cli(SECAGG_AGGREGATOR.format(agg="krum")), "the core words it for the command line"


def test_every_refusal_the_form_can_show_speaks_of_its_fields(qtbot):
    from core.learning.protocol import RULES
    from desktop.training.training_form import TrainingForm
    from desktop.wording import speaks_cli
    form = TrainingForm()
    qtbot.addWidget(form)
    seen = []
    form.attackers.setValue(2)   # an attack count without an attack
    seen.append(form.refusal.text())
    assert form.refusal.text() == ("Attackers is above 0 but Attack is none: choose an attack (sign flip, "
                                   "scaled noise or label flip), or set Attackers to 0")
    form.attackers.setValue(0)
    form.secure_agg.setChecked(True)
    for index in range(form.aggregator.count()):
        form.aggregator.setCurrentIndex(index)
        seen.append(form.refusal.text())
        assert bool(form.refusal.text()) != RULES[form.aggregator.currentData()].secure_agg
    assert len([t for t in seen if t]) >= 3
    for text in seen:
        assert not speaks_cli(text), text


def test_the_form_lists_the_rules_table_with_its_labels_and_help(qtbot, monkeypatch):
    import dataclasses

    from core.learning.protocol import RULES
    from desktop.training.training_form import TrainingForm
    monkeypatch.setitem(RULES, "median", dataclasses.replace(RULES["median"], label="Median (renamed)",
                                                             help="read from the table"))
    form = TrainingForm()
    qtbot.addWidget(form)
    combo = form.aggregator
    assert [combo.itemData(i) for i in range(combo.count())] == list(RULES)
    assert [combo.itemText(i) for i in range(combo.count())] == [r.label for r in RULES.values()]
    assert [combo.itemData(i, Qt.ToolTipRole) for i in range(combo.count())] == [r.help for r in RULES.values()]
    assert combo.itemText(combo.findData("median")) == "Median (renamed)"


def test_a_refusal_found_only_at_start_is_shown_and_no_task_is_created(window, qtbot):
    panel = training_tab(window)
    form = panel.form
    form.model.setCurrentIndex(form.model.findData("cnn"))
    form.dataset.setCurrentIndex(form.dataset.findData("synthetic"))
    assert not form.refusal.isVisible()   # the spec alone is fine; the data shape is not
    qtbot.mouseClick(form.start_button, Qt.LeftButton)
    qtbot.waitUntil(form.refusal.isVisible, timeout=20000)
    assert "cnn model needs an image dataset" in form.refusal.text()
    assert "cnn model needs an image dataset" in window.statusBar().currentMessage()
    assert window.node.service("learning").tasks == {} and panel.task is None
    assert not form.start_button.isEnabled(), "the same options would be refused again"
    form.dataset.setCurrentIndex(form.dataset.findData("digits"))
    assert not form.refusal.isVisible() and form.start_button.isEnabled()


def test_a_worker_window_lists_the_invitation_and_join_joins_it(make_node, run, qtbot, address_of, artifacts):
    from desktop.window import MainWindow
    coord = make_node("coord")
    worker = make_node("bob")
    win = MainWindow(worker)
    qtbot.addWidget(win)
    win.show()
    panel = training_tab(win)
    invitations = panel.invitations
    assert not invitations.auto_join.isChecked() and not invitations.empty.isHidden()
    run(worker.add_peer(address_of(coord)))
    worker.trust(coord.identity.id, "core")
    qtbot.waitUntil(lambda: len(coord.connected_peers()) == 1, timeout=10000)
    coord.trust(worker.identity.id, "core")

    started = run(coord.service("learning").start_task(rounds=3, min_clients=1, seed=1))
    task_id = started["task"]
    qtbot.waitUntil(lambda: invitations.table.rowCount() == 1, timeout=20000)
    assert invitations.table.item(0, 0).text() == task_id
    assert invitations.table.item(0, 1).text() == "coord"
    assert invitations.table.item(0, 5).text() == "invited"
    assert invitations.selected_task() == task_id and invitations.join_button.isEnabled()
    assert panel.lower.currentWidget() is invitations, "a new invitation brings its list to the front"
    assert panel.lower.tabText(panel.lower.indexOf(invitations)) == "Invitations (1)"
    assert win.grab().save(str(artifacts / "training-tab-invitation.png"))

    qtbot.mouseClick(invitations.join_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: invitations.state_of(task_id) == "joined", timeout=20000)
    assert invitations.table.item(0, 5).text() == "joined"
    assert not invitations.join_button.isEnabled()
    assert panel.lower.tabText(panel.lower.indexOf(invitations)) == "Invitations"
    assert f"Joined task {task_id}" in win.statusBar().currentMessage()
    task = coord.service("learning").tasks[task_id]
    qtbot.waitUntil(lambda: task.state != "running", timeout=ROUND_MS)
    assert task.state == "done" and worker.identity.id in task.participants


def test_the_auto_join_checkbox_switches_the_worker_role_and_is_remembered(window, qtbot):
    invitations = training_tab(window).invitations
    node = window.node
    invitations.auto_join.setChecked(True)
    assert node.service("learning").auto_join is True and node.store.get_setting("ml.auto_join") is True
    assert "automatically" in window.statusBar().currentMessage()
    invitations.auto_join.setChecked(False)
    assert node.service("learning").auto_join is False and node.store.get_setting("ml.auto_join") is False


def test_eta_reads_in_seconds_minutes_or_hours():
    from desktop.training.training_panel import eta_text
    assert eta_text(None) == ""
    assert eta_text(0.2) == "about 1 s left"
    assert eta_text(42) == "about 42 s left"
    assert eta_text(600) == "about 10 min left"
    assert eta_text(3 * 3600) == "about 3.0 h left"


def test_a_finished_run_renders_to_png(window, make_node, run, qtbot, address_of, artifacts):
    from PySide6.QtGui import QImage
    federation(window.node, make_node, run, qtbot, address_of, n=3)
    panel = training_tab(window)
    fill_form(panel.form, rounds=4, aggregator="median", min_clients=2, attack="sign_flip", attackers=1)
    task = run_to_the_end(panel, qtbot)
    assert task.state == "done"
    # three rejections took the attacker's reputation to the ban threshold: round 4 ran without it
    attacker = next(p for p, s in task.participants.items() if s == 0)
    assert window.node.peers.get(attacker).banned and attacker not in task.history[-1]["workers"]
    rows = {r["Peer"]: r for r in panel.workers.rows()}
    assert rows[window.node.peers.get(attacker).name]["Status"].startswith("banned (reputation")
    assert len(rows) == 3
    window.show_status(f"Training task {task.id} finished")
    QApplication.processEvents()
    path = artifacts / "training-tab.png"
    assert window.grab().save(str(path))
    image = QImage(str(path))
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert image.width() >= 1000 and image.height() >= 600 and len(colors) > 20


def test_an_invitation_over_the_model_budget_shows_its_size_and_cannot_be_joined(make_node, run, qtbot,
                                                                                 address_of):
    from desktop.window import MainWindow
    coord, worker = make_node("coord"), make_node("bob")
    worker.service("learning").worker.set_max_params(1000)   # the digits MLP has a few thousand
    win = MainWindow(worker)
    qtbot.addWidget(win)
    win.show()
    invitations = training_tab(win).invitations
    run(worker.add_peer(address_of(coord)))
    worker.trust(coord.identity.id, "core")
    qtbot.waitUntil(lambda: len(coord.connected_peers()) == 1, timeout=10000)
    coord.trust(worker.identity.id, "core")

    started = run(coord.service("learning").start_task(rounds=3, min_clients=1, seed=1))
    qtbot.waitUntil(lambda: invitations.table.rowCount() == 1, timeout=20000)
    size = invitations.table.item(0, 6)
    params = worker.service("learning").worker.view(worker.service("learning").worker.members[started["task"]])["params"]
    assert size.text() == f"{params:,}" and params > 1000
    assert "cannot be joined" in size.toolTip()
    assert invitations.selected_task() == started["task"]
    assert not invitations.join_button.isEnabled()


@pytest.mark.parametrize("width, columns", [(520, 1), (700, 2), (1000, 3)])
def test_the_form_reflows_to_the_width_instead_of_scrolling_sideways(make_node, qtbot, width, columns):
    from desktop.training.training_panel import TrainingPanel
    from tests.gui.test_layout_fit import cut_labels, hidden_buttons, settle, sideways_scrolling
    node = make_node("narrow")
    panel = TrainingPanel(node, node.service("learning"))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    settle(panel, qtbot, (width, 600))
    assert panel.form.fields.columns == columns
    assert not sideways_scrolling(panel), sideways_scrolling(panel)
    assert not cut_labels(panel), cut_labels(panel)
    assert not hidden_buttons(panel), hidden_buttons(panel)
    # the form keeps every field at its full height (the charts below give way, the page scrolls)
    for field in (panel.form.model, panel.form.attackers, panel.form.deadline):
        assert field.height() >= field.minimumSizeHint().height()
