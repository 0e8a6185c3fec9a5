"""Encryption: preferred / minimum mode, the network key, and the warning banner."""
from __future__ import annotations

import html
import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel,
                               QMessageBox, QPushButton, QVBoxLayout)
from qasync import asyncSlot

from core.config import MODE_RANK

from ..actions import confirm, run_action

log = logging.getLogger("covey.desktop.crypto")
MODE_LABELS = {
    "symmetric": "symmetric — network key + forward secrecy",
    "asymmetric": "asymmetric — X25519, forward secrecy",
    "none": "none — NO encryption (authenticated only)",
}
MODE_ORDER = ("symmetric", "asymmetric", "none")   # strongest first, as the user reads them


def _mode_combo() -> QComboBox:
    combo = QComboBox()
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
        self.current = QLabel()
        self.current.setObjectName("cryptoCurrent")
        self.preferred = _mode_combo()
        self.minimum = _mode_combo()
        self.preferred.setToolTip("The mode this node asks for; the stronger of both sides' "
                                  "preferences is used when both accept it.")
        self.minimum.setToolTip("The weakest mode this node accepts; peers that only offer "
                                "weaker modes are refused.")
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply)
        self.key_state = QLabel()
        self.key_button = QPushButton("Generate network key")
        self.key_button.clicked.connect(self.generate_key_clicked)
        self.error = QLabel()
        self.error.setTextFormat(Qt.PlainText)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()

        form = QFormLayout()
        form.addRow("Preferred", self.preferred)
        form.addRow("Minimum", self.minimum)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_state, 1)
        key_row.addWidget(self.key_button)
        form.addRow("Network key", key_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.current, 1)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.error)
        self.preferred.currentIndexChanged.connect(self._preferred_changed)
        self.minimum.currentIndexChanged.connect(self._minimum_changed)
        self.refresh()

    # -- state --------------------------------------------------------------------
    def refresh(self, view: dict | None = None) -> None:
        view = view or self.node.crypto_view()
        self._view = view
        have_key = view["network_key"]
        why = "" if have_key else "needs a network key: generate one (or import it with `covey crypto psk import`)"
        for combo in (self.preferred, self.minimum):
            _set_enabled(combo, "symmetric", have_key, why)
            combo.blockSignals(True)
        self.preferred.setCurrentIndex(self.preferred.findData(view["mode"]))
        self.minimum.setCurrentIndex(self.minimum.findData(view["min"]))
        for combo in (self.preferred, self.minimum):
            combo.blockSignals(False)
        self.current.setText(f"In effect: {view['mode']} (accepts {', '.join(reversed(view['offered']))})")
        self.key_state.setText("set (keep it secret; share out of band)" if have_key else "none")
        self.key_button.setText("Replace network key…" if have_key else "Generate network key")
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

    def on_event_settings_changed(self, event) -> None:
        self.refresh()

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

    def generate_key_clicked(self) -> None:
        if not self._view["network_key"]:
            self.generate_key()
            return
        self.confirm_box = confirm(
            self, "Replace network key", "Replace the network key with a new random one?",
            "Peers that hold the old key can no longer connect in symmetric "
            "mode until you give them the new one (`covey crypto psk export`).", "Replace",
            self.generate_key)

    @asyncSlot()
    async def generate_key(self) -> None:
        def created(view: dict) -> str:
            self.refresh(view)
            return ("New network key created: symmetric mode is available. "
                    "Give the key to your peers out of band (`covey crypto psk export FILE`).")
        await run_action(self, self.node.psk_set(), failure="Could not create a network key",
                         busy=self.key_button, error_label=self.error, success=created)


class SecurityBanner(QFrame):
    """A warning across the window while unencrypted traffic is possible or happening.

    The peer list is read once; after that the connection events say which
    connections are in clear text (their payload carries the peer, its name and mode).
    """

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.setObjectName("dangerBanner")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.RichText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.text, 1)
        self.plain: dict[str, str] = {}   # peer id -> shown name of each connection in mode none
        self.refresh()

    def message(self) -> str:
        """The warning in force, or '' when every connection must be encrypted."""
        view = self.node.crypto_view()
        parts = []
        if view["mode"] == "none":
            parts.append("<b>Encryption is OFF.</b> This node prefers mode <i>none</i>: anyone on "
                         "the network path can read its traffic. Peers are still authenticated "
                         "and frames keep their integrity.")
        elif view["min"] == "none":
            parts.append("<b>Unencrypted connections are accepted.</b> The minimum mode is "
                         "<i>none</i>: a peer that prefers no encryption can connect in clear text.")
        if self.plain:
            names = html.escape(", ".join(list(self.plain.values())[:5]))  # names come from peers
            parts.append(f"<b>{len(self.plain)} connection(s) unencrypted right now:</b> {names}.")
        return " ".join(parts)

    def refresh(self) -> None:
        """Re-read the connections in clear text, then redraw."""
        self.plain = {p["id"]: p["name"] or p["id"][:12] for p in self.node.list_peers()
                      if p["connected"] and p["mode"] == "none"}
        self._draw()

    def _draw(self) -> None:
        text = self.message()
        self.text.setText(text)
        self.setVisible(bool(text))

    def on_event_settings_changed(self, event) -> None:
        self._draw()

    def on_event_peer_connected(self, event) -> None:
        peer, data = event.data.get("peer"), event.data
        if data.get("mode") == "none":
            self.plain[peer] = data.get("name") or str(peer)[:12]
        elif self.plain.pop(peer, None) is None:
            return
        self._draw()

    def on_event_peer_disconnected(self, event) -> None:
        if self.plain.pop(event.data.get("peer"), None) is not None:
            self._draw()
