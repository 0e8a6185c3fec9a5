"""Every tab of the main window fits a small screen, at 100% and at 150%, and every control says what it does.

Generic over the whole window: the tabs come from the window a real node builds
(``desktop/tabs.py`` PANELS), each is shown by clicking its tab, and what a
person would see is checked: every interactive widget has a tooltip and an
accessible name, no label is cut, every button can be seen (scrolling a scroll
area if need be), and the window's minimum size fits 900x600. The 150% run is a
subprocess with ``QT_SCALE_FACTOR=1.5`` on a 1920x1200 offscreen screen (1280x800
logical), the checks being the same.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QAbstractScrollArea, QAbstractSpinBox,
                               QApplication, QComboBox, QHeaderView, QLabel, QLineEdit, QPlainTextEdit,
                               QScrollArea, QSlider, QTabBar, QTextEdit, QWidget)

SMALL = (900, 600)
INNER = "COVEY_LAYOUT_SCALED"          # set in the subprocess that runs at 150%
INTERACTIVE = (QAbstractButton, QLineEdit, QPlainTextEdit, QTextEdit, QComboBox, QAbstractSpinBox,
               QAbstractItemView, QSlider)
INTERNAL_PARENTS = (QComboBox, QAbstractSpinBox, QTabBar, QLineEdit, QAbstractItemView)


def _internal(widget: QWidget) -> bool:
    """Parts Qt builds inside a control (a spin box's editor, a table's corner button, a tab bar's arrows)."""
    if isinstance(widget, QHeaderView) or widget.objectName().startswith("qt_"):
        return True
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, INTERNAL_PARENTS):
            return True
        parent = parent.parentWidget()
    return False


def name_of(widget: QWidget) -> str:
    text = widget.text() if hasattr(widget, "text") and callable(widget.text) else ""
    return f"{type(widget).__name__} {widget.objectName() or ''} {text!r} ({widget.accessibleName()!r})"


def interactive(root: QWidget) -> list[QWidget]:
    """The visible controls a person can use under ``root``."""
    return [w for w in root.findChildren(QWidget)
            if isinstance(w, INTERACTIVE) and w.isVisible() and not _internal(w)]


def title_visible(window, index: int) -> bool:
    bar = window.tabs.tabBar()
    return bar.rect().contains(bar.tabRect(index))


def show_tab(window, qtbot, index: int) -> QWidget:
    """Click the tab's title in the tab bar, as a person does (a title scrolled off the bar is
    reached the way the bar's arrows reach it)."""
    bar = window.tabs.tabBar()
    if title_visible(window, index):
        qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(index).center())
    else:
        window.tabs.setCurrentIndex(index)
    qtbot.waitUntil(lambda: window.tabs.currentIndex() == index)
    QApplication.processEvents()
    return window.tabs.widget(index)


def settle(window, qtbot, size) -> None:
    """Resize (a window whose minimum is larger stays larger: that is reported on its own)."""
    window.resize(*size)
    for _ in range(5):   # a layout that changes on resize (a form reflowing its columns) settles in steps
        QApplication.processEvents()
        qtbot.wait(10)


def rect_in(widget: QWidget, window: QWidget) -> QRect:
    return widget.rect().translated(widget.mapTo(window, QPoint(0, 0)))


def cut_labels(window) -> list[str]:
    """Labels whose text does not fit the space they got."""
    problems = []
    for label in window.findChildren(QLabel):
        if not label.isVisible() or not label.text().strip() or _internal(label):
            continue
        if label.wordWrap():   # may wrap, but every line must fit the height it was given
            needed = label.heightForWidth(label.width())
            if label.width() <= 0 or needed > label.height() + 1:
                problems.append(f"{name_of(label)} needs {needed} px height at width {label.width()}, "
                                f"has {label.height()}")
            continue
        if label.textFormat() == Qt.PlainText or not GuiQt.mightBeRichText(label.text()):
            metrics = label.fontMetrics()
            lines = label.text().split("\n")
            needed = max(metrics.horizontalAdvance(line) for line in lines)
            needed += label.contentsMargins().left() + label.contentsMargins().right() + 2 * label.margin()
            tall = metrics.height() + (len(lines) - 1) * metrics.lineSpacing()
            if label.contentsRect().height() < tall - 1:
                problems.append(f"{name_of(label)} is {label.contentsRect().height()} px high, its text needs {tall}")
        else:
            needed = label.sizeHint().width()
        if label.width() < needed:
            problems.append(f"{name_of(label)} is {label.width()} px wide, its text needs {needed}")
    return problems


def cut_headers(window) -> list[str]:
    """Column titles of tables narrower than their text (a column squeezed to nothing)."""
    problems = []
    for view in window.findChildren(QAbstractItemView):
        header = getattr(view, "horizontalHeader", lambda: None)()
        if not view.isVisible() or header is None or header.isHidden() or view.model() is None:
            continue
        metrics = header.fontMetrics()
        for section in range(header.count()):
            if header.isSectionHidden(section):
                continue
            text = str(view.model().headerData(section, Qt.Horizontal) or "")
            if text and header.sectionSize(section) < metrics.horizontalAdvance(text):
                problems.append(f"column {text!r} of {name_of(view)} is {header.sectionSize(section)} px wide")
    return problems


def hidden_buttons(window) -> list[str]:
    """Buttons a person cannot see whole, even after scrolling to them."""
    problems = []
    frame = window.rect()
    for button in window.findChildren(QAbstractButton):
        if not button.isVisible() or _internal(button):
            continue
        area = _scroll_area_of(button)
        if area is not None:
            area.ensureWidgetVisible(button, 0, 0)
            QApplication.processEvents()
        where = rect_in(button, window)
        if not frame.contains(where):
            problems.append(f"{name_of(button)} at {where} is outside the window {frame}")
        elif area is not None and not rect_in(area.viewport(), window).contains(where):
            problems.append(f"{name_of(button)} at {where} is outside its scroll area's view")
        elif button.width() < button.minimumSizeHint().width():
            problems.append(f"{name_of(button)} is {button.width()} px wide, needs {button.minimumSizeHint().width()}")
    return problems


def _scroll_area_of(widget: QWidget) -> QScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QScrollArea):
            return parent
        if isinstance(parent, QAbstractScrollArea):   # a table's cell widget scrolls with the table
            return None
        parent = parent.parentWidget()
    return None


def sideways_scrolling(window) -> list[str]:
    """Scroll areas (not tables) whose content is wider than their view: a form that does not fit."""
    return [f"{name_of(area)} scrolls sideways: its content needs {area.widget().minimumSizeHint().width()} px, "
            f"the view is {area.viewport().width()}"
            for area in window.findChildren(QScrollArea)
            if area.isVisible() and area.widget() is not None and area.horizontalScrollBar().isVisible()]


def unnamed_controls(root: QWidget) -> list[str]:
    return [name_of(w) for w in interactive(root) if not w.toolTip().strip() or not w.accessibleName().strip()]


def check_every_tab(window, qtbot, size) -> dict[str, list[str]]:
    """Per tab title, what is wrong with it at ``size``."""
    settle(window, qtbot, size)
    found = {}
    for index in range(window.tabs.count()):
        hidden_title = not title_visible(window, index)
        panel = show_tab(window, qtbot, index)
        settle(window, qtbot, size)
        if hidden_title:
            found.setdefault("tab bar", []).append(f"the title {window.tabs.tabText(index)!r} is off the tab bar")
        problems = cut_labels(window) + cut_headers(window) + sideways_scrolling(window) + hidden_buttons(window)
        hint = panel.minimumSizeHint()
        if hint.width() > size[0] - 20 or hint.height() > size[1] - 100:
            problems.append(f"the tab needs at least {hint.width()}x{hint.height()}")
        if problems:
            found[window.tabs.tabText(index)] = problems
    return found


# -- at 100% ---------------------------------------------------------------------------

@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="the 150% run checks fitting only")
def test_every_control_on_every_tab_has_a_tooltip_and_an_accessible_name(window, qtbot):
    missing = {}
    assert window.tabs.count() >= 6
    for index in range(window.tabs.count()):
        panel = show_tab(window, qtbot, index)
        assert interactive(panel), f"no controls found on {window.tabs.tabText(index)}"
        problems = unnamed_controls(panel)
        if problems:
            missing[window.tabs.tabText(index)] = problems
    assert not missing, json.dumps(missing, indent=1)


def test_the_window_fits_900_by_600_and_nothing_is_cut(window, qtbot):
    hint = window.minimumSizeHint()
    found = check_every_tab(window, qtbot, SMALL)
    if hint.width() > SMALL[0] or hint.height() > SMALL[1]:
        found["window"] = [f"the window needs at least {hint.width()}x{hint.height()}"]
    assert not found, json.dumps(found, indent=1)


def test_the_window_fits_the_screen_it_opens_on(window, qtbot):
    """Shown as it opens (its own size) on a 1280x800 logical screen: inside it, and nothing cut."""
    if not os.environ.get(INNER):
        pytest.skip("only on the configured screen of the 150% run (the default offscreen screen is 800x800)")
    screen = window.screen().availableGeometry()
    assert window.width() <= screen.width() and window.height() <= screen.height(), \
        f"the window opens at {window.size()} on a {screen.size()} screen"
    found = check_every_tab(window, qtbot, (window.width(), window.height()))
    assert not found, json.dumps(found, indent=1)


# -- at 150% ---------------------------------------------------------------------------

SCREEN = {"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1920, "height": 1200,
                       "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}


@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="this is the outer run")
def test_at_150_percent_every_tab_fits(tmp_path):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps(SCREEN))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, INNER: "1", "QT_SCALE_FACTOR": "1.5",
           "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "fits_900 or fits_the_screen or scaled_run", "--basetemp", str(tmp_path / "inner")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout, result.stdout[-2000:]


def test_the_scaled_run_really_is_scaled(qapp):
    if not os.environ.get(INNER):
        pytest.skip("only inside the 150% run")
    screen = qapp.primaryScreen()
    assert screen.devicePixelRatio() == 1.5 and screen.availableGeometry().width() == 1280
