"""Shared look: the style sheet, fonts, the app icon from ``resources/`` and small text helpers."""
from __future__ import annotations

import html
import logging
from typing import TypeVar

from PySide6.QtGui import QColor, QFont, QIcon
from PySide6.QtWidgets import QLabel, QTableWidgetItem, QWidget

from .resources_path import resources_dir

log = logging.getLogger("covey.desktop.style")
RESOURCES = resources_dir()


def mono_font(point_size: int = -1) -> QFont:
    """The monospace font for ids, keys and fingerprints (-1: the application's size)."""
    font = QFont("DejaVu Sans Mono", point_size)
    font.setStyleHint(QFont.Monospace)
    return font


def style_sheet() -> str:
    """The application style sheet, or '' (Qt's default look) if it is not installed."""
    path = RESOURCES / "covey.qss"
    try:
        return path.read_text(encoding="utf-8").replace("@RESOURCES@", RESOURCES.as_posix())
    except OSError as exc:
        log.warning("style sheet not loaded (%s); using the default look", exc)
        return ""


def app_icon() -> QIcon:
    path = RESOURCES / "covey.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def grouped(text: str, size: int, per_line: int) -> str:
    """``text`` in groups of ``size`` characters, ``per_line`` groups per line."""
    groups = [text[i:i + size] for i in range(0, len(text), size)]
    return "\n".join(" ".join(groups[i:i + per_line]) for i in range(0, len(groups), per_line))


W = TypeVar("W", bound=QWidget)


def named(widget: W, name: str, tip: str) -> W:
    """``widget`` with an accessible name (what a screen reader says) and a tooltip."""
    widget.setAccessibleName(name)
    widget.setToolTip(tip)
    return widget


def plain_tip(text: str) -> str:
    """A tooltip that shows ``text`` literally: Qt renders a tooltip that looks like markup as
    markup, so text from peers (names, event details) goes in escaped, as rich text."""
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


def caption(text: str) -> QLabel:
    """A muted label naming the value beside it."""
    label = QLabel(text)
    label.setObjectName("caption")
    return label


# Colours of states in tables (done / failed / muted), one place for every area.
GOOD, BAD, MUTED = QColor("#2e7d32"), QColor("#b71c1c"), QColor("#6b7383")


def table_item(text: str, color: QColor | None = None, tip: str = "") -> QTableWidgetItem:
    """A read-only table cell with an optional text colour and tooltip."""
    item = QTableWidgetItem(text)
    if color is not None:
        item.setForeground(color)
    if tip:
        item.setToolTip(tip)
    return item
