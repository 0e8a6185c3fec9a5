"""Details of the selected peer: what to compare out of band before trusting it."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout

from ..style import caption, grouped

SOURCES = {"manual": "added by hand", "inbound": "connected to us", "lan": "found on the LAN",
           "bootstrap": "bootstrap list"}


class PeerDetails(QGroupBox):
    """Full id, fingerprint, address and how the peer's key was pinned."""

    def __init__(self, tier_help: dict[str, str], parent=None):
        super().__init__("Selected peer", parent)
        self.tier_help = tier_help
        self.fingerprint = _value("peerFingerprint")
        self.peer_id = _value("mono")
        self.address = _value()
        self.key = _value()
        self.tier = _value()
        self.verified = _value()
        self.connection = _value()
        for label in (self.key, self.tier, self.address, self.verified, self.connection):
            label.setWordWrap(True)
        # two columns side by side: the panel sits under the peer table and keeps it tall
        who, trust = QFormLayout(), QFormLayout()
        for form in (who, trust):
            form.setLabelAlignment(Qt.AlignLeft)
        who.addRow(caption("Fingerprint"), self.fingerprint)
        who.addRow(caption("ID"), self.peer_id)
        who.addRow(caption("Address"), self.address)
        trust.addRow(caption("Tier"), self.tier)
        trust.addRow(caption("Verified"), self.verified)
        trust.addRow(caption("Connection"), self.connection)
        trust.addRow(caption("Key"), self.key)
        columns = QHBoxLayout()
        columns.addLayout(who, 1)
        columns.addLayout(trust, 1)
        hint = QLabel("Compare the fingerprint with the peer's owner (in person or by phone) "
                      "before raising its tier.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(hint)
        self.show_peer(None)

    def show_peer(self, peer: dict | None) -> None:
        self.setVisible(peer is not None)
        if peer is None:
            return
        self.setTitle(f"Selected peer: {peer['name'] or '(unnamed)'}")
        self.fingerprint.setText(grouped((peer.get("fingerprint") or "").replace(" ", ""), 4, 4))
        self.peer_id.setText(grouped(peer["id"], 8, 4))
        self.address.setText(peer["address"] or "unknown (it connected to us)")
        source = SOURCES.get(peer.get("source") or "", peer.get("source") or "unknown origin")
        pinned = ("pinned: another key at this address is refused" if peer.get("pinned")
                  else "learned from its first connection")
        self.key.setText(f"{pinned}; {source}")
        verified = peer.get("verified")
        self.verified.setText("chat is off on this node" if verified is None else
                              "yes: you compared the safety number" if verified else
                              "no: compare the safety number (Chat tab) or the fingerprint")
        self.connection.setText(f"{peer['mode']}, {peer.get('route') or 'direct'}" if peer["connected"] and peer.get("mode")
                                else "not connected")
        if peer["banned"]:
            self.tier.setText(f"banned (tier {peer['tier']} applies again when the ban is lifted)")
        else:
            self.tier.setText(f"{peer['tier']}: {self.tier_help.get(peer['tier'], '')}")


def _value(name: str = "") -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.PlainText)  # peer names and addresses come from the network
    if name:
        label.setObjectName(name)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label
