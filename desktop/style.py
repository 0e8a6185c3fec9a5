"""Shared look: the style sheet, fonts and the app icon from ``resources/``."""
from __future__ import annotations

import logging

from PySide6.QtGui import QFont, QIcon

from .resources_path import resources_dir

log = logging.getLogger("covey.desktop.style")
RESOURCES = resources_dir()


def mono_font(point_size: int = 10) -> QFont:
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
