"""The Network tab: proxy Off / SOCKS5 / Tor, applied to the node, and tor's live state."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QPushButton, QRadioButton, QScrollArea,
                               QVBoxLayout, QWidget)
from qasync import asyncSlot

from core.errors import BadRequest

from ..actions import run_action, run_action_now
from ..style import named
from .socks_box import Socks5Box
from .tor_box import TorBox

NO_TOR_NETWORK = ("Tor cannot start without a tor network: choose the network's config file "
                  "(Start tor), or give the control address of a running tor (Use a running tor).")


def describe(view: dict) -> str:
    """The route in force, in a few words."""
    if view["mode"] == "socks5":
        return f"In effect: SOCKS5 proxy {view['host']}:{view['port']}"
    if view["mode"] == "tor":
        tor = view.get("tor") or {}
        return f"In effect: Tor ({tor.get('bootstrap', 0)}% started)" if tor.get("running") else "In effect: Tor (not running)"
    return "In effect: direct connections (no proxy)"


class NetworkPanel(QScrollArea):
    """Shows how the node reaches its peers and sends the user's proxy choice to it."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.off_radio = named(QRadioButton("Off"), "No proxy", "Connect to peers directly.")
        self.socks_radio = named(QRadioButton("SOCKS5"), "SOCKS5 proxy",
                                 "Send every connection through a SOCKS5 proxy.")
        self.tor_radio = named(QRadioButton("Tor"), "Tor",
                               "Send every connection through tor and publish this node as an onion service.")
        self.mode = QButtonGroup(self)
        for radio in (self.off_radio, self.socks_radio, self.tor_radio):
            self.mode.addButton(radio)
        self.socks = Socks5Box()
        self.tor = TorBox()
        self.current = named(QLabel(), "Route in effect", "How this node reaches its peers now.")
        self.apply_button = named(QPushButton("Apply"), "Apply the proxy choice",
                                  "Use the choice above from now on. With a proxy or tor chosen, "
                                  "nothing ever goes directly when it is down.")
        self.error = named(QLabel(), "Network error", "Why the last change did not work.")
        self.error.setObjectName("error")
        self.error.setTextFormat(Qt.PlainText)
        self.error.setWordWrap(True)
        self.error.hide()

        radios = QHBoxLayout()
        radios.addWidget(QLabel("Proxy"))
        for radio in (self.off_radio, self.socks_radio, self.tor_radio):
            radios.addWidget(radio)
        radios.addStretch(1)
        apply_row = QHBoxLayout()
        apply_row.addWidget(self.current, 1)
        apply_row.addWidget(self.apply_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(radios)
        layout.addWidget(self.socks)
        layout.addWidget(self.tor)
        layout.addLayout(apply_row)
        layout.addWidget(self.error)
        layout.addStretch(1)
        self.setWidget(body)
        self.setWidgetResizable(True)

        self.mode.buttonToggled.connect(self._mode_changed)
        self.apply_button.clicked.connect(self.apply)
        self.socks.test_button.clicked.connect(self.test_proxy)
        self.tor.copy_onion.clicked.connect(self.copy_onion)
        self.tor.new_identity.clicked.connect(self.new_identity)
        self.tor.refresh_circuits.clicked.connect(self.load_circuits)
        self.refresh()

    # -- state --------------------------------------------------------------------------
    def refresh(self, view: dict | None = None) -> None:
        view = view or self.node.proxy_view()
        self._view = view
        {"off": self.off_radio, "socks5": self.socks_radio, "tor": self.tor_radio}[view["mode"]].setChecked(True)
        self.socks.show_view(view)
        settings = self.node.settings
        if view["mode"] == "tor":
            self.tor.show_settings(settings.tor_control, settings.tor_config)
        self.tor.show_status(view.get("tor"), chosen=view["mode"] == "tor")
        self.current.setText(describe(view))
        self._mode_changed()

    def chosen(self) -> str:
        return "socks5" if self.socks_radio.isChecked() else "tor" if self.tor_radio.isChecked() else "off"

    def _mode_changed(self, *_) -> None:
        self.socks.setVisible(self.chosen() == "socks5")
        self.tor.setVisible(self.chosen() == "tor" or self._view["mode"] == "tor")

    def on_event_settings_changed(self, event) -> None:
        self.refresh()

    def on_event_tor_status(self, event) -> None:
        self.tor.show_status(event.data, chosen=self.node.settings.proxy_mode == "tor")
        self.current.setText(describe(self.node.proxy_view()))

    # -- actions ------------------------------------------------------------------------
    def _call(self):
        """The core call for the chosen mode (BadRequest in words when a field is wrong)."""
        mode = self.chosen()
        if mode == "off":
            return self.node.set_proxy("off", password="")
        if mode == "socks5":
            host, port, user, password = self.socks.values()
            return self.node.set_proxy("socks5", host, port, user, password)
        control, config = self.tor.choice()
        s = self.node.settings
        if not (control or config or s.tor_config or s.tor_public_network):
            raise BadRequest(NO_TOR_NETWORK)
        return self.node.use_tor(control, config)

    @asyncSlot()
    async def apply(self) -> None:
        self.error.hide()
        call = None

        def make() -> None:
            nonlocal call
            call = self._call()
        if not run_action_now(self, make, failure="Could not change the proxy", error_label=self.error):
            return

        def applied(view: dict) -> str:
            self.refresh(view)
            return describe(view).replace("In effect: ", "Network: ")
        await run_action(self, call, failure="Could not change the proxy", busy=self.apply_button,
                         on_error=lambda _: self.refresh(self.node.proxy_view()), error_label=self.error,
                         success=applied)

    @asyncSlot()
    async def test_proxy(self) -> None:
        self.socks.test_result.clear()
        values = []
        if not run_action_now(self, lambda: values.extend(self.socks.values()), failure="Proxy test failed",
                              error_label=self.socks.test_result):
            return
        host, port, user, password = values

        def worked(result: dict) -> str:
            text = f"The proxy works: it reached {result['target']}."
            self.socks.test_result.setText(text)
            return text
        await run_action(self, self.node.route.test_proxy(host, port, user, password),
                         failure="Proxy test failed", busy=self.socks.test_button,
                         error_label=self.socks.test_result, success=worked)

    def copy_onion(self) -> None:
        QGuiApplication.clipboard().setText(self.tor.onion.text())
        self.status.emit("Onion address copied to the clipboard")

    @asyncSlot()
    async def new_identity(self) -> None:
        await run_action(self, self.node.route.new_identity(), failure="Could not get a new tor identity",
                         busy=self.tor.new_identity, error_label=self.error,
                         success="Tor: new identity; new connections use new circuits")

    @asyncSlot()
    async def load_circuits(self) -> None:
        def loaded(circuits: list) -> str:
            self.tor.show_circuits(circuits)
            return f"Tor: {len(circuits)} circuits"
        await run_action(self, self.node.route.circuits(), failure="Could not list tor's circuits",
                         busy=self.tor.refresh_circuits, error_label=self.error, success=loaded)
