"""Window geometry, the last tab and the training form come back in the next window of the home."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from desktop.shell.prefs import PREFS_FILE
from tests.gui.shell_helpers import open_window


def type_into(qtbot, field, text: str) -> None:
    """Select what the field holds and type ``text`` over it, as a person would."""
    field.setFocus()
    qtbot.keyClick(field, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(field, text)


def test_geometry_last_tab_and_training_form_are_restored(make_node, qtbot, artifacts):
    node = make_node("alice")
    win = open_window(node, qtbot)
    assert win.training_panel is not None
    # Qt fits a restored window into the screen (offscreen: 800x800, narrower than the window's
    # minimum), so the size chosen here is one that fits: the narrowest width, a lower height
    size = (win.minimumSizeHint().width(), 650)
    win.resize(*size)
    bar = win.tabs.tabBar()
    training = next(i for i in range(win.tabs.count()) if win.tabs.tabText(i) == "Training")
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(training).center())
    form = win.training_panel.form
    type_into(qtbot, form.rounds, "25")
    type_into(qtbot, form.lr, "0.05")
    form.aggregator.setFocus()
    qtbot.keyClick(form.aggregator, Qt.Key_End)          # the last rule in the list
    chosen_rule = form.aggregator.currentData()
    assert form.rounds.value() == 25 and chosen_rule != "fedavg"
    qtbot.mouseClick(form.secure_agg, Qt.LeftButton, pos=QPoint(8, form.secure_agg.height() // 2))
    secure = form.secure_agg.isChecked()
    with qtbot.waitSignal(win.closed):
        qtbot.keyClick(win, Qt.Key_Q, Qt.ControlModifier)
    assert (node.home / PREFS_FILE).exists()

    again = open_window(node, qtbot)
    assert (again.width(), again.height()) == size
    assert again.tabs.tabText(again.tabs.currentIndex()) == "Training"
    restored = again.training_panel.form
    assert restored.rounds.value() == 25
    assert abs(restored.lr.value() - 0.05) < 1e-9
    assert restored.aggregator.currentData() == chosen_rule
    assert restored.secure_agg.isChecked() == secure
    again.grab().save(str(artifacts / "shell-restored-training-tab.png"))


def test_a_fresh_home_opens_at_the_default_size_and_first_tab(window):
    assert (window.width(), window.height()) == (1200, 800)
    assert window.tabs.currentIndex() == 0


def test_a_damaged_prefs_file_is_ignored(make_node, qtbot):
    node = make_node("bea")
    (node.home / PREFS_FILE).write_text("[window]\ngeometry=@ByteArray(garbage)\ntab=No such tab\n"
                                        "[training_panel]\nrounds=lots\naggregator=nope\n")
    win = open_window(node, qtbot)
    assert (win.width(), win.height()) == (1200, 800)
    assert win.tabs.currentIndex() == 0
    assert win.training_panel.form.rounds.value() == 10
