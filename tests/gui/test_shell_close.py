"""Closing the window: the question (tray or quit), "don't ask again", the tray's Show and Quit."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

from tests.gui.shell_helpers import open_window


def close_question(qtbot, win):
    """Press the window's close button (what the window manager sends) and get the question."""
    win.close()
    qtbot.waitUntil(lambda: win.shell.close_dialog is not None and win.shell.close_dialog.isVisible())
    return win.shell.close_dialog


def click_tray_item(qtbot, tray, text: str) -> None:
    menu = tray.contextMenu()
    menu.popup(QPoint(10, 10))
    qtbot.waitUntil(menu.isVisible)
    action = next(a for a in menu.actions() if a.text().replace("&", "") == text)
    qtbot.mouseClick(menu, Qt.LeftButton, pos=menu.actionGeometry(action).center())


def tick(qtbot, box) -> None:
    """Click a checkbox on its box (the widget may be wider than its label)."""
    qtbot.mouseClick(box, Qt.LeftButton, pos=QPoint(8, box.height() // 2))


@pytest.fixture
def node(make_node):
    return make_node("alice")


def test_keep_running_in_tray_hides_the_window_and_the_tray_brings_it_back(node, qtbot, artifacts):
    win = open_window(node, qtbot, tray=True)
    closed = []
    win.closed.connect(lambda: closed.append(1))
    dialog = close_question(qtbot, win)
    dialog.grab().save(str(artifacts / "shell-close-question.png"))
    assert dialog.keep.text().replace("&", "") == "Keep running in tray"
    assert not dialog.remember.isChecked()
    qtbot.mouseClick(dialog.keep, Qt.LeftButton)
    qtbot.waitUntil(lambda: not win.isVisible())
    assert win.shell.tray is not None and win.shell.tray.isVisible()
    assert closed == [] and not node._stopping          # the node runs on
    assert win.shell.prefs.close_choice() is None       # not remembered: asked again next time

    click_tray_item(qtbot, win.shell.tray, "Show Covey")
    qtbot.waitUntil(win.isVisible)
    assert not win.shell.tray.isVisible()

    close_question(qtbot, win)
    qtbot.mouseClick(win.shell.close_dialog.keep, Qt.LeftButton)
    qtbot.waitUntil(lambda: not win.isVisible())
    with qtbot.waitSignal(win.closed):
        click_tray_item(qtbot, win.shell.tray, "Quit")
    assert not win.shell.tray.isVisible()


def test_quit_with_dont_ask_again_is_remembered_for_the_next_window(node, qtbot):
    win = open_window(node, qtbot, tray=True)
    dialog = close_question(qtbot, win)
    tick(qtbot, dialog.remember)
    assert dialog.remember.isChecked()
    with qtbot.waitSignal(win.closed):
        qtbot.mouseClick(dialog.quit, Qt.LeftButton)
    assert not win.isVisible()
    again = open_window(node, qtbot, tray=True)
    with qtbot.waitSignal(again.closed):
        again.close()                                   # no question this time
    assert again.shell.close_dialog is None


def test_a_remembered_tray_choice_goes_straight_to_the_tray(node, qtbot):
    win = open_window(node, qtbot, tray=True)
    dialog = close_question(qtbot, win)
    tick(qtbot, dialog.remember)
    qtbot.mouseClick(dialog.keep, Qt.LeftButton)
    qtbot.waitUntil(lambda: not win.isVisible())
    again = open_window(node, qtbot, tray=True)
    again.close()
    qtbot.waitUntil(lambda: not again.isVisible())
    assert again.shell.close_dialog is None and again.shell.tray.isVisible()
    for window in (again, win):
        with qtbot.waitSignal(window.closed):
            click_tray_item(qtbot, window.shell.tray, "Quit")


def test_cancel_keeps_the_window_open(node, qtbot):
    win = open_window(node, qtbot, tray=True)
    dialog = close_question(qtbot, win)
    qtbot.mouseClick(dialog.cancel, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert win.isVisible() and win.shell.tray is None


def test_without_a_system_tray_closing_quits_without_asking(node, qtbot):
    win = open_window(node, qtbot, tray=False)
    with qtbot.waitSignal(win.closed):
        win.close()
    assert win.shell.close_dialog is None and win.shell.tray is None
