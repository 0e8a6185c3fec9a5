"""Driving the menu bar the way a person does: click the menu's title, then the item."""
from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMenu


def menu_titled(window, title: str) -> QMenu:
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == title:
            return action.menu()
    raise AssertionError(f"no {title!r} menu in {[a.text() for a in window.menuBar().actions()]}")


def open_menu(qtbot, window, title: str) -> QMenu:
    """Click the menu's title in the menu bar; returns the menu, now on screen."""
    menu = menu_titled(window, title)
    bar = window.menuBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.actionGeometry(menu.menuAction()).center())
    qtbot.waitUntil(menu.isVisible)
    return menu


def items(menu: QMenu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def click_item(qtbot, window, title: str, item: str) -> None:
    """Open the menu ``title`` and click its item ``item`` (the mnemonic '&' ignored)."""
    menu = open_menu(qtbot, window, title)
    for action in menu.actions():
        if action.text().replace("&", "") == item:
            assert action.isEnabled(), f"{title} > {item} is disabled"
            qtbot.mouseClick(menu, Qt.LeftButton, pos=menu.actionGeometry(action).center())
            qtbot.waitUntil(lambda: not menu.isVisible())
            return
    raise AssertionError(f"no {item!r} in {title}: {items(menu)}")


def open_window(node, qtbot, tray: bool | None = None):
    """A MainWindow of ``node``, shown and active (keys and shortcuts reach it); ``tray`` says
    whether the shell should believe a system tray exists (None: ask Qt)."""
    from desktop.window import MainWindow
    win = MainWindow(node)
    if tray is not None:
        win.shell.has_tray = lambda: tray
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    activate(qtbot, win)
    return win


def activate(qtbot, win) -> None:
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)


class Opened(QObject):
    """Receives the URLs the app asks the desktop to open (QDesktopServices' own hook)."""

    def __init__(self):
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@contextmanager
def urls_opened():
    """Collect the URLs the app asks the desktop to open, instead of opening them."""
    catcher = Opened()
    for scheme in ("file", "https", "http"):
        QDesktopServices.setUrlHandler(scheme, catcher, "open")
    try:
        yield catcher
    finally:
        for scheme in ("file", "https", "http"):
            QDesktopServices.unsetUrlHandler(scheme)
