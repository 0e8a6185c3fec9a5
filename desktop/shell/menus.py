"""The menu bar: File, View, Help, with the shortcuts a desktop user expects.

File:  Open data folder, Close window (Ctrl+W), Quit (Ctrl+Q)
View:  one item per tab, one of many (Ctrl+1..9)
Help:  Covey help (F1: the README), About Covey (the version)
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget

from desktop.resources_path import resources_dir

MAX_TAB_SHORTCUTS = 9


def version() -> str:
    """Covey's version as installed (the package metadata), or the core's when run from source."""
    try:
        return importlib.metadata.version("covey")
    except importlib.metadata.PackageNotFoundError:
        from core.app.cli import VERSION
        return VERSION


def help_url() -> QUrl | None:
    """The README shipped with this copy (source tree or bundle), or None when there is none."""
    for folder in (resources_dir().parent, Path(__file__).resolve().parents[2]):
        readme = folder / "README.md"
        if readme.is_file():
            return QUrl.fromLocalFile(str(readme))
    return None


@dataclass
class Menus:
    """The actions, kept so tests and the window can reach them."""
    open_folder: QAction
    close_window: QAction
    quit: QAction
    tabs: list[QAction]
    help: QAction
    about: QAction


def build_menus(window: QMainWindow, tabs: QTabWidget, home: Path, quit: Callable[[], None]) -> Menus:
    """Fill ``window``'s menu bar; ``quit`` stops the node and ends the app."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    open_folder = _action(window, "&Open data folder", None, "Show this node's data folder "
                          f"({home}) in the file manager")
    open_folder.triggered.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(home))))
    close_window = _action(window, "&Close window", QKeySequence("Ctrl+W"),
                           "Close the window (you are asked whether the node keeps running)")
    close_window.triggered.connect(window.close)
    quit_action = _action(window, "&Quit", QKeySequence("Ctrl+Q"), "Stop the node and quit Covey")
    quit_action.setMenuRole(QAction.QuitRole)
    quit_action.triggered.connect(quit)
    file_menu.addAction(open_folder)
    file_menu.addSeparator()
    file_menu.addAction(close_window)
    file_menu.addAction(quit_action)

    view_menu = bar.addMenu("&View")
    group = QActionGroup(window)
    group.setExclusive(True)
    tab_actions = []
    for index in range(tabs.count()):
        title = tabs.tabText(index).replace("&", "")
        shortcut = QKeySequence(f"Ctrl+{index + 1}") if index < MAX_TAB_SHORTCUTS else None
        action = _action(window, title, shortcut, f"Show the {title} tab")
        action.setCheckable(True)
        action.setChecked(index == tabs.currentIndex())
        action.triggered.connect(lambda _=False, i=index: tabs.setCurrentIndex(i))
        group.addAction(action)
        view_menu.addAction(action)
        tab_actions.append(action)
    tabs.currentChanged.connect(lambda i: 0 <= i < len(tab_actions) and tab_actions[i].setChecked(True))

    help_menu = bar.addMenu("&Help")
    url = help_url()
    help_action = _action(window, "Covey &help", QKeySequence("F1"),
                          "Open the README: what each tab does and how to get started")
    if url is None:
        help_action.setEnabled(False)
        help_action.setToolTip("The README is not installed with this copy of Covey")
    else:
        help_action.triggered.connect(lambda: QDesktopServices.openUrl(url))
    about = _action(window, "&About Covey", None, "Version and what Covey is")
    about.setMenuRole(QAction.AboutRole)
    about.triggered.connect(lambda: show_about(window))
    help_menu.addAction(help_action)
    help_menu.addSeparator()
    help_menu.addAction(about)
    return Menus(open_folder, close_window, quit_action, tab_actions, help_action, about)


def show_about(parent) -> QMessageBox:
    """The About box (window-modal, not blocking the event loop)."""
    box = QMessageBox(QMessageBox.Information, "About Covey", f"Covey {version()}", QMessageBox.Ok, parent)
    box.setObjectName("aboutDialog")
    box.setInformativeText("A node of a small private federation: end-to-end encrypted chat, "
                           "trust tiers, signed knowledge and tasks, and federated learning.")
    box.open()
    return box


def _action(window: QMainWindow, text: str, shortcut: QKeySequence | None, tip: str) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(shortcut)
    action.setStatusTip(tip)
    action.setToolTip(tip)
    window.addAction(action)   # shortcuts work while the menu bar is hidden (and offscreen)
    return action
