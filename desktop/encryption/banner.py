"""The warning across the window while unencrypted traffic is possible or happening."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel

from ..style import named


class SecurityBanner(QFrame):
    """A warning across the window while unencrypted traffic is possible or happening.

    The peer list is read once; after that the connection events say which
    connections are in clear text (their payload carries the peer, its name and mode).
    """

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.setObjectName("dangerBanner")
        self.text = named(QLabel(), "Encryption warning",
                          "Shown while this node may send or is sending traffic without encryption; "
                          "the Encryption tab changes the modes.")
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
