"""Encryption modes and the network key: preferred / minimum mode, generate, import, export."""
from __future__ import annotations

import logging

from PySide6.QtCore import QDir, Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QPushButton, QVBoxLayout)
from qasync import asyncSlot

from core.config import MODE_RANK

from ..actions import confirm, run_action
from ..style import named

log = logging.getLogger("covey.desktop.crypto")
MODE_LABELS = {
    "symmetric": "symmetric — network key + forward secrecy",
    "asymmetric": "asymmetric — X25519, forward secrecy",
    "none": "none — NO encryption (authenticated only)",
}
MODE_ORDER = ("symmetric", "asymmetric", "none")   # strongest first, as the user reads them
NEEDS_KEY = "needs a network key: generate one or import it (Network key, below)"
KEY_FILES = "Network key files (*.key *.txt);;All files (*)"


def _mode_combo(name: str, tip: str) -> QComboBox:
    combo = named(QComboBox(), name, tip)
    for mode in MODE_ORDER:
        combo.addItem(MODE_LABELS[mode], mode)
    return combo


def _set_enabled(combo: QComboBox, mode: str, enabled: bool, tooltip: str = "") -> None:
    item = combo.model().item(combo.findData(mode)) if isinstance(combo.model(), QStandardItemModel) else None
    if item is not None:
        item.setEnabled(enabled)
        item.setToolTip(tooltip)


def _is_enabled(combo: QComboBox, mode: str) -> bool:
    return combo.model().item(combo.findData(mode)).isEnabled()


class CryptoPanel(QGroupBox):
    """Shows the current modes and sends mode and network-key changes to the node."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, parent=None):
        super().__init__("Encryption", parent)
        self.node = node
        self.confirm_box: QMessageBox | None = None
        self.current = named(QLabel(), "Encryption in effect", "The mode asked for now, and the modes accepted.")
        self.current.setObjectName("cryptoCurrent")
        self.current.setWordWrap(True)
        self.preferred = _mode_combo("Preferred mode", "The mode this node asks for; the stronger of both "
                                     "sides' preferences is used when both accept it.")
        self.minimum = _mode_combo("Minimum mode", "The weakest mode this node accepts; peers that only "
                                   "offer weaker modes are refused.")
        self.apply_button = named(QPushButton("Apply"), "Apply the modes",
                                  "Use the preferred and minimum modes chosen above; connections in a "
                                  "weaker mode are closed and negotiate again.")
        self.key_state = named(QLabel(), "Network key state", "Whether this node holds a network key.")
        self.key_state.setWordWrap(True)
        self.key_button = named(QPushButton("Generate network key"), "Generate a network key",
                                "Create a new random network key for symmetric mode.")
        self.import_button = named(QPushButton("Import…"), "Import a network key",
                                   "Read the network key a peer gave you from a file.")
        self.export_button = named(QPushButton("Export…"), "Export the network key",
                                   "Write the network key to a file (readable only by you) to give "
                                   "to peers out of band.")
        self.error = named(QLabel(), "Encryption error", "Why the last change did not work.")
        self.error.setTextFormat(Qt.PlainText)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        form.addRow("Preferred", self.preferred)
        form.addRow("Minimum", self.minimum)
        key_buttons = QHBoxLayout()
        key_buttons.addWidget(self.key_button)
        key_buttons.addWidget(self.import_button)
        key_buttons.addWidget(self.export_button)
        key_buttons.addStretch(1)
        key_box = QVBoxLayout()
        key_box.addWidget(self.key_state)
        key_box.addLayout(key_buttons)
        form.addRow("Network key", key_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.current, 1)
        buttons.addWidget(self.apply_button, 0, Qt.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.error)
        self.preferred.currentIndexChanged.connect(self._preferred_changed)
        self.minimum.currentIndexChanged.connect(self._minimum_changed)
        self.apply_button.clicked.connect(self.apply)
        self.key_button.clicked.connect(self.generate_key_clicked)
        self.import_button.clicked.connect(self.import_clicked)
        self.export_button.clicked.connect(self.export_clicked)
        self.refresh()

    # -- state --------------------------------------------------------------------
    def refresh(self, view: dict | None = None) -> None:
        view = view or self.node.crypto_view()
        self._view = view
        have_key = view["network_key"]
        for combo in (self.preferred, self.minimum):
            _set_enabled(combo, "symmetric", have_key, "" if have_key else NEEDS_KEY)
            combo.blockSignals(True)
        self.preferred.setCurrentIndex(self.preferred.findData(view["mode"]))
        self.minimum.setCurrentIndex(self.minimum.findData(view["min"]))
        for combo in (self.preferred, self.minimum):
            combo.blockSignals(False)
        self.current.setText(f"In effect: {view['mode']} (accepts {', '.join(reversed(view['offered']))})")
        self.key_state.setText("set (keep it secret; share it out of band)" if have_key else "none")
        self.key_button.setText("Replace…" if have_key else "Generate network key")
        self.key_button.setAccessibleName("Replace the network key" if have_key else "Generate a network key")
        self.export_button.setEnabled(have_key)
        self._update_apply()

    def symmetric_selectable(self) -> bool:
        return _is_enabled(self.preferred, "symmetric")

    def _preferred_changed(self) -> None:
        pref, low = self.preferred.currentData(), self.minimum.currentData()
        if MODE_RANK[low] > MODE_RANK[pref]:   # asking for less than we accept: lower the floor
            self.minimum.setCurrentIndex(self.minimum.findData(pref))
        self._update_apply()

    def _minimum_changed(self) -> None:
        pref, low = self.preferred.currentData(), self.minimum.currentData()
        if MODE_RANK[low] > MODE_RANK[pref]:
            self.preferred.setCurrentIndex(self.preferred.findData(low))
        self._update_apply()

    def _update_apply(self) -> None:
        self.error.hide()
        self.apply_button.setEnabled((self.preferred.currentData(), self.minimum.currentData())
                                     != (self._view["mode"], self._view["min"]))

    # -- actions ----------------------------------------------------------------------
    @asyncSlot()
    async def apply(self) -> None:
        mode, low = self.preferred.currentData(), self.minimum.currentData()

        def applied(view: dict) -> str:
            self.refresh(view)
            return f"Encryption: {mode}, minimum {low}"
        await run_action(self, self.node.set_mode(mode, low), failure="Could not change the encryption mode",
                         busy=self.apply_button, on_error=lambda _: self.refresh(),   # back to what is in force
                         error_label=self.error, success=applied)

    def _replacing(self, what: str, on_yes) -> None:
        """Run ``on_yes`` now when there is no key yet; otherwise ask first."""
        if not self._view["network_key"]:
            on_yes()
            return
        self.confirm_box = confirm(
            self, "Replace network key", f"Replace the network key with {what}?",
            "Peers that hold the old key can no longer connect in symmetric mode until "
            "they have the new one (Export… writes it to a file).", "Replace", on_yes)

    def generate_key_clicked(self) -> None:
        self._replacing("a new random one", self.generate_key)

    @asyncSlot()
    async def generate_key(self) -> None:
        def created(view: dict) -> str:
            self.refresh(view)
            return ("New network key created: symmetric mode is available. "
                    "Give the key to your peers out of band (Export…).")
        await run_action(self, self.node.psk_set(), failure="Could not create a network key",
                         busy=self.key_button, error_label=self.error, success=created)

    def import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a network key", QDir.homePath(), KEY_FILES)
        if path:
            self._replacing("the one in this file", lambda: self.import_key(path))

    @asyncSlot(str)
    async def import_key(self, path: str) -> None:
        def imported(view: dict) -> str:
            self.refresh(view)
            return "Network key imported: symmetric mode is available"
        await run_action(self, self.node.psk_import(path), failure="Could not import the network key",
                         busy=self.import_button, error_label=self.error, success=imported)

    def export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the network key", QDir.homePath() + "/covey-network.key",
                                              KEY_FILES)
        if path:
            self.export_key(path)

    @asyncSlot(str)
    async def export_key(self, path: str) -> None:
        await run_action(self, self.node.psk_export(path), failure="Could not export the network key",
                         busy=self.export_button, error_label=self.error,
                         success=f"Network key written to {path} (only you can read it); keep it secret")
