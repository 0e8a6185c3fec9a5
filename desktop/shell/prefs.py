"""What the desktop remembers between runs: an ini file in the node's home (QSettings).

Window geometry, the last tab, the close choice, and the fields of the forms handed to it,
keyed by each field's objectName (a field without one is named after its attribute on the
form, so a form needs no change to be remembered).
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QLineEdit, QMainWindow, QTabWidget, QWidget

log = logging.getLogger("covey.desktop.prefs")
PREFS_FILE = "desktop.ini"
FIELDS = (QComboBox, QAbstractSpinBox, QCheckBox, QLineEdit)
CLOSE_CHOICES = ("tray", "quit")


def form_fields(form: QWidget) -> dict[str, QWidget]:
    """The input fields of ``form`` by objectName; unnamed attribute fields get their attribute's name.
    Password fields are never remembered."""
    for attr, value in vars(form).items():
        if isinstance(value, FIELDS) and not value.objectName():
            value.setObjectName(attr)
    fields = {}
    for field in form.findChildren(QWidget):
        if not isinstance(field, FIELDS) or not field.objectName():
            continue
        if isinstance(field, QLineEdit) and field.echoMode() != QLineEdit.Normal:
            continue
        if isinstance(field.parent(), QAbstractSpinBox) or isinstance(field.parent(), QComboBox):
            continue   # a spin box's or combo's own line edit
        fields[field.objectName()] = field
    return fields


class Prefs:
    """The ini file ``desktop.ini`` in ``home``."""

    def __init__(self, home: Path):
        self.path = Path(home) / PREFS_FILE
        self.qsettings = QSettings(str(self.path), QSettings.IniFormat)

    def sync(self) -> None:
        self.qsettings.sync()

    # -- the window ---------------------------------------------------------------------
    def save_window(self, window: QMainWindow, tabs: QTabWidget) -> None:
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        if tabs.count():
            self.qsettings.setValue("window/tab", tabs.tabText(tabs.currentIndex()))

    def restore_window(self, window: QMainWindow, tabs: QTabWidget) -> None:
        """Geometry and last tab as saved; a tab that no longer exists leaves the first one."""
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None and not window.restoreGeometry(geometry):
            log.info("saved window geometry not usable; using the default size")
        state = self.qsettings.value("window/state")
        if state is not None:
            window.restoreState(state)
        title = self.qsettings.value("window/tab")
        for index in range(tabs.count()):
            if tabs.tabText(index) == title:
                tabs.setCurrentIndex(index)
                break

    # -- forms --------------------------------------------------------------------------
    def save_form(self, name: str, form: QWidget) -> None:
        for key, field in form_fields(form).items():
            self.qsettings.setValue(f"{name}/{key}", _value_of(field))

    def restore_form(self, name: str, form: QWidget) -> None:
        """Put the saved values back; a value the field no longer accepts is skipped."""
        for key, field in form_fields(form).items():
            value = self.qsettings.value(f"{name}/{key}")
            if value is not None:
                _set_value(field, value)

    # -- the close question ----------------------------------------------------------------
    def close_choice(self) -> str | None:
        value = self.qsettings.value("close/choice")
        return value if value in CLOSE_CHOICES else None

    def set_close_choice(self, choice: str | None) -> None:
        if choice is None:
            self.qsettings.remove("close/choice")
        else:
            self.qsettings.setValue("close/choice", choice)


def _value_of(field: QWidget):
    if isinstance(field, QComboBox):
        data = field.currentData()
        return field.currentText() if data is None else str(data)
    if isinstance(field, QCheckBox):
        return field.isChecked()
    if isinstance(field, QLineEdit):
        return field.text()
    return field.value()   # QSpinBox / QDoubleSpinBox


def _set_value(field: QWidget, value) -> None:
    try:
        if isinstance(field, QComboBox):
            index = field.findData(value)
            if index < 0:
                index = field.findText(str(value))
            if index >= 0:
                field.setCurrentIndex(index)
        elif isinstance(field, QCheckBox):
            field.setChecked(value in (True, "true", "True", "1"))
        elif isinstance(field, QLineEdit):
            field.setText(str(value))
        elif hasattr(field, "setValue"):
            kind = type(field.value())
            field.setValue(kind(float(value)))
    except (TypeError, ValueError) as exc:
        log.info("saved value %r for %s not used: %s", value, field.objectName(), exc)
