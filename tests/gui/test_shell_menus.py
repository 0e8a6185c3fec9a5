"""The menu bar, used as a person uses it: click the menu, click the item, or press the shortcut."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox
import pytest

from desktop.shell.menus import version
from tests.gui.shell_helpers import activate, click_item, items, open_menu
from tests.gui.shell_helpers import urls_opened


@pytest.fixture(autouse=True)
def active(window, qtbot):
    """Shortcuts reach only the active window."""
    activate(qtbot, window)


def test_the_menu_bar_has_file_view_help_with_their_items(window, qtbot, artifacts):
    assert [a.text().replace("&", "") for a in window.menuBar().actions()] == ["File", "View", "Help"]
    file_menu = open_menu(qtbot, window, "File")
    assert items(file_menu) == ["Open data folder", "Close window", "Quit"]
    window.grab().save(str(artifacts / "shell-file-menu-window.png"))
    file_menu.grab().save(str(artifacts / "shell-file-menu.png"))
    file_menu.close()
    view = open_menu(qtbot, window, "View")
    assert items(view) == [window.tabs.tabText(i) for i in range(window.tabs.count())]
    view.close()
    assert items(open_menu(qtbot, window, "Help")) == ["Covey help", "About Covey"]


def test_open_data_folder_opens_the_nodes_home(window, qtbot):
    with urls_opened() as opened:
        click_item(qtbot, window, "File", "Open data folder")
    assert [u.toLocalFile() for u in opened.urls] == [str(window.node.home)]


def test_view_items_switch_tabs_and_follow_the_tab_bar(window, qtbot):
    last = window.tabs.count() - 1
    click_item(qtbot, window, "View", window.tabs.tabText(last))
    assert window.tabs.currentIndex() == last
    # a click on the tab bar moves the check mark in the View menu
    bar = window.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(0).center())
    assert window.tabs.currentIndex() == 0
    assert [a.isChecked() for a in window.shell.menus.tabs][:2] == [True, False]


def test_ctrl_number_switches_to_that_tab(window, qtbot):
    assert window.tabs.count() >= 3
    qtbot.keyClick(window, Qt.Key_3, Qt.ControlModifier)
    assert window.tabs.currentIndex() == 2
    qtbot.keyClick(window, Qt.Key_1, Qt.ControlModifier)
    assert window.tabs.currentIndex() == 0


def test_f1_and_help_open_the_readme(window, qtbot):
    with urls_opened() as opened:
        qtbot.keyClick(window, Qt.Key_F1)
        click_item(qtbot, window, "Help", "Covey help")
    assert len(opened.urls) == 2
    assert all(u.toLocalFile().endswith("README.md") for u in opened.urls)


def test_about_shows_the_version(window, qtbot, artifacts):
    click_item(qtbot, window, "Help", "About Covey")
    qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), QMessageBox))
    box = QApplication.activeModalWidget()
    assert box.windowTitle() == "About Covey"
    assert box.text() == f"Covey {version()}" and version() == "0.1.0"
    box.grab().save(str(artifacts / "shell-about.png"))
    qtbot.mouseClick(box.button(QMessageBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not box.isVisible())


def test_ctrl_q_quits_without_asking(window, qtbot):
    window.shell.has_tray = lambda: True     # even where a tray would be offered
    with qtbot.waitSignal(window.closed):
        qtbot.keyClick(window, Qt.Key_Q, Qt.ControlModifier)
    assert not window.isVisible() and window.shell.close_dialog is None


def test_quit_in_the_file_menu_quits(window, qtbot):
    with qtbot.waitSignal(window.closed):
        click_item(qtbot, window, "File", "Quit")
    assert not window.isVisible()


def test_ctrl_w_is_the_close_button(window, qtbot):
    window.shell.has_tray = lambda: True
    qtbot.keyClick(window, Qt.Key_W, Qt.ControlModifier)
    qtbot.waitUntil(lambda: window.shell.close_dialog is not None and window.shell.close_dialog.isVisible())
    assert window.isVisible()        # the question is asked; nothing closed yet
    qtbot.mouseClick(window.shell.close_dialog.cancel, Qt.LeftButton)
    assert window.isVisible()


def test_close_window_in_the_file_menu_asks_like_the_close_button(window, qtbot):
    window.shell.has_tray = lambda: True
    click_item(qtbot, window, "File", "Close window")
    qtbot.waitUntil(lambda: window.shell.close_dialog is not None and window.shell.close_dialog.isVisible())
    with qtbot.waitSignal(window.closed):
        qtbot.mouseClick(window.shell.close_dialog.quit, Qt.LeftButton)
    assert not window.isVisible()
