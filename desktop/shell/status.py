"""The permanent fields of the status bar: node state, connected peers, route, encryption mode.

Each is kept current from core events (through the window's EventBridge) and the node's
in-memory state (``node.connections``, ``node.settings``): never a database read per event.
"""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

ROUTE_NAMES = {"off": "direct", "socks5": "SOCKS5", "tor": "Tor"}


def _field(name: str, tip: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setToolTip(tip)
    label.setAccessibleName(tip)
    return label


class StatusFields(QWidget):
    """Four labels for the right end of the status bar; receives events as ``on_event_<name>``."""

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.state = _field("nodeState", "Node state")
        self.peers = _field("peerCount", "Connected peers")
        self.route = _field("route", "How connections leave this node")
        self.mode = _field("encryptionMode", "Preferred and minimum encryption mode")
        self._tor: dict = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(14)
        for label in (self.state, self.peers, self.route, self.mode):
            layout.addWidget(label)
        started = getattr(node, "started_at", None) is not None and getattr(node, "transport", None) is not None
        self.show_state("stopping" if getattr(node, "_stopping", False) else "running" if started else "starting")
        tor = getattr(getattr(node, "route", None), "tor", None)
        if tor is not None:
            self._tor = tor.status()
        self.show_peers()
        self.show_route()
        self.show_mode()

    # -- what is shown ------------------------------------------------------------------
    def show_state(self, state: str) -> None:
        self.state.setText(f"Node {state}")
        _flag(self.state, "danger", state == "stopping")

    def show_peers(self) -> None:
        count = sum(1 for conn in self.node.connections.values() if not conn.closed)
        self.peers.setText(f"{count} peer{'s' if count != 1 else ''} connected")

    def show_route(self) -> None:
        s = self.node.settings
        text = f"Route: {ROUTE_NAMES.get(s.proxy_mode, s.proxy_mode)}"
        bootstrap = int(self._tor.get("bootstrap") or 0)
        waiting = s.proxy_mode == "tor" and bool(self._tor) and bootstrap < 100
        if s.proxy_mode == "tor" and self._tor:   # our tor (owned or attached): its progress
            text += " (ready)" if self._tor.get("running") and not waiting else f" (bootstrap {bootstrap}%)"
        elif s.proxy_mode != "off" and s.proxy_host:
            text += f" {s.proxy_host}:{s.proxy_port}"
        self.route.setText(text)
        self.route.setToolTip("Nothing is sent until tor is ready" if waiting
                              else "How connections leave this node")
        _flag(self.route, "danger", waiting)

    def show_mode(self) -> None:
        s = self.node.settings
        self.mode.setText(f"Encryption: {s.mode} (min {s.min_mode})")
        _flag(self.mode, "danger", s.min_mode == "none")

    # -- node events ------------------------------------------------------------------------
    def on_event_node_started(self, event) -> None:
        self.show_state("running")

    def on_event_node_stopping(self, event) -> None:
        self.show_state("stopping")

    def on_event_peer_connected(self, event) -> None:
        self.show_peers()

    on_event_peer_disconnected = on_event_peer_connected

    def on_event_settings_changed(self, event) -> None:
        self.show_route()
        self.show_mode()

    def on_event_tor_status(self, event) -> None:
        self._tor = dict(event.data)
        self.show_route()


def _flag(label: QLabel, name: str, on: bool) -> None:
    """Set a style-sheet property and re-polish so the look follows."""
    if label.property(name) != on:
        label.setProperty(name, on)
        label.style().unpolish(label)
        label.style().polish(label)
