"""Where ``resources/`` (style sheet, icons, .desktop file) is, however Covey was installed.

Looked for, first match wins:
1. ``$COVEY_RESOURCES`` (a packager or a user pointing at their own copy);
2. a PyInstaller bundle: ``sys._MEIPASS/resources`` (the spec ships it there);
3. the source tree or an editable install: ``resources/`` next to ``desktop/``;
4. a wheel that shipped it as data files: ``<sys.prefix>/share/covey/resources``.

A directory counts only if it holds the style sheet, so a stray empty folder is skipped.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "covey.qss"


def candidates() -> list[Path]:
    """Every place ``resources/`` may be, in the order they are tried."""
    found: list[Path] = []
    env = os.environ.get("COVEY_RESOURCES")
    if env:
        found.append(Path(env).expanduser())
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        found.append(Path(bundle) / "resources")
    found.append(Path(__file__).resolve().parent.parent / "resources")
    found.append(Path(sys.prefix) / "share" / "covey" / "resources")
    return found


def resources_dir() -> Path:
    """The first candidate that holds the style sheet; else the source-tree location
    (callers already handle missing files by falling back to Qt's default look)."""
    options = candidates()
    for path in options:
        if (path / MARKER).is_file():
            return path
    return Path(__file__).resolve().parent.parent / "resources"
