"""The Tor part of the Network tab: which tor, bootstrap progress, onion address, identity, circuits."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QProgressBar, QPushButton, QRadioButton)

from ..style import named

NOT_READY = "Tor is not ready: nothing is being sent"


class TorBox(QGroupBox):
    """Fields to choose a tor, and what the running tor reports."""

    def __init__(self, parent=None):
        super().__init__("Tor", parent)
        self.start_radio = named(QRadioButton("Start tor"), "Start tor",
                                  "This app starts its own tor, joining the network described by "
                                  "the config file below.")
        self.running_radio = named(QRadioButton("Use a running tor"), "Use a running tor",
                                    "Attach to a tor that already runs, by its control address.")
        self.source = QButtonGroup(self)
        self.source.addButton(self.start_radio)
        self.source.addButton(self.running_radio)
        self.start_radio.setChecked(True)
        self.config = named(QLineEdit(), "Tor network config file",
                             "The tor config file of the network to join (its DirAuthority lines). "
                             "Leave empty to keep the one chosen before.")
        self.browse = named(QPushButton("Choose…"), "Choose the tor network config file",
                             "Pick the tor network config file.")
        self.browse.clicked.connect(self.choose_config)
        self.control = named(QLineEdit(), "Tor control address",
                              "The running tor's control address, HOST:PORT (cookie login).")
        self.control.setPlaceholderText("127.0.0.1:9051")
        self.progress = named(QProgressBar(), "Tor bootstrap progress", "How far tor has started.")
        self.progress.setRange(0, 100)
        self.summary = named(QLabel(), "Tor status", "What tor is doing now.")
        self.not_ready = named(QLabel(), "Tor not ready",
                                "While tor is not ready nothing is sent, never directly instead.")
        self.not_ready.setObjectName("error")
        self.onion = named(QLineEdit(), "Onion address",
                            "The onion address peers reach this node at through tor.")
        self.onion.setReadOnly(True)
        self.copy_onion = named(QPushButton("Copy"), "Copy the onion address",
                                 "Copy the onion address to the clipboard.")
        self.new_identity = named(QPushButton("New identity"), "New tor identity",
                                   "Ask tor for new circuits: new connections leave through other "
                                   "relays (tor allows this once every 10 s).")
        self.circuits = named(QListWidget(), "Tor circuits", "Tor's circuits: id, state, purpose and relays.")
        self.refresh_circuits = named(QPushButton("Refresh circuits"), "Refresh the circuits",
                                       "Ask tor for its circuits now.")
        for label in (self.summary, self.not_ready):
            label.setTextFormat(Qt.PlainText)
            label.setWordWrap(True)
        grid = QGridLayout(self)
        grid.addWidget(self.start_radio, 0, 0)
        config_row = QHBoxLayout()
        config_row.addWidget(self.config, 1)
        config_row.addWidget(self.browse)
        grid.addLayout(config_row, 0, 1)
        grid.addWidget(self.running_radio, 1, 0)
        grid.addWidget(self.control, 1, 1)
        grid.addWidget(self.progress, 2, 0, 1, 2)
        grid.addWidget(self.summary, 3, 0, 1, 2)
        grid.addWidget(self.not_ready, 4, 0, 1, 2)
        grid.addWidget(QLabel("Onion address"), 5, 0)
        onion_row = QHBoxLayout()
        onion_row.addWidget(self.onion, 1)
        onion_row.addWidget(self.copy_onion)
        grid.addLayout(onion_row, 5, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_identity)
        buttons.addWidget(self.refresh_circuits)
        buttons.addStretch(1)
        grid.addLayout(buttons, 6, 0, 1, 2)
        grid.addWidget(self.circuits, 7, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        self.source.buttonToggled.connect(self._source_changed)
        self._source_changed()
        self.show_status(None, chosen=False)

    def _source_changed(self, *_) -> None:
        own = self.start_radio.isChecked()
        self.config.setEnabled(own)
        self.browse.setEnabled(own)
        self.control.setEnabled(not own)

    def choose_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Tor network config file", self.config.text())
        if path:
            self.config.setText(path)

    def choice(self) -> tuple[str | None, str | None]:
        """(control address, config file) as typed; empty fields are None."""
        if self.running_radio.isChecked():
            return self.control.text().strip() or None, None
        return None, self.config.text().strip() or None

    def show_settings(self, control: str, config: str) -> None:
        (self.running_radio if control else self.start_radio).setChecked(True)
        self.control.setText(control or self.control.text())
        self.config.setText(config or self.config.text())

    def show_status(self, tor: dict | None, *, chosen: bool) -> None:
        """Render ``proxy_view()["tor"]`` (or a TOR_STATUS event's data); ``chosen``: the node routes via tor."""
        tor = tor or {}
        running, bootstrap = bool(tor.get("running")), int(tor.get("bootstrap") or 0)
        ready = running and bootstrap >= 100
        self.progress.setValue(bootstrap if running else 0)
        self.summary.setText(tor.get("summary") or ("" if running else tor.get("error") or "tor is not running"))
        self.not_ready.setText(NOT_READY if chosen and not ready else "")
        self.not_ready.setVisible(chosen and not ready)
        if "address" in tor:
            self.onion.setText(tor.get("address") or "")
        self.copy_onion.setEnabled(bool(self.onion.text()))
        self.new_identity.setEnabled(chosen and running)
        self.refresh_circuits.setEnabled(chosen and running)

    def show_circuits(self, circuits: list[dict]) -> None:
        self.circuits.clear()
        for c in circuits:
            path = " → ".join(hop["nickname"] or hop["fingerprint"][:8] for hop in c["path"])
            self.circuits.addItem(f"{c['id']}  {c['status'].lower()}  {c['purpose'].lower()}: {path or '(no relays yet)'}")
