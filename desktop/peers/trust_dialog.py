"""Before raising a peer to CORE: compare the fingerprints or the safety number, then confirm."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout

from ..style import caption, grouped, mono_font


class CoreConfirmDialog(QDialog):
    """Shows our fingerprint, the peer's fingerprint and (with chat) the 60-digit safety number.

    Cancel is the default: Enter or Escape leave the tier as it was. ``accepted`` means the
    person says the numbers match."""

    def __init__(self, peer: dict, our_fingerprint: str, safety: dict | None, parent=None):
        super().__init__(parent)
        name = peer["name"] or peer["id"][:12]
        self.setWindowTitle(f"Raise {name} to CORE?")
        self.setMinimumWidth(460)
        intro = QLabel(f"CORE is full trust: {name} may propagate knowledge through this node, "
                       "delegate tasks to it and relay its messages. First make sure it is really "
                       "them: compare these with their owner, in person or on a call you trust.")
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.PlainText)
        form = QFormLayout()
        self.ours = _number(grouped(our_fingerprint.replace(" ", ""), 4, 4), "Our fingerprint")
        self.theirs = _number(grouped((peer.get("fingerprint") or "").replace(" ", ""), 4, 4),
                              f"Fingerprint of {name}")
        form.addRow(caption("Our fingerprint"), self.ours)
        form.addRow(caption(f"Theirs ({name})"), self.theirs)
        self.safety = None
        if safety is not None:
            self.safety = _number(grouped(safety["safety_number"], 5, 4), "Safety number")
            self.safety.setToolTip("The same 60 digits appear on both sides (Chat tab, Safety number)")
            form.addRow(caption("Safety number"), self.safety)
        self.state = QLabel(_state(safety))
        self.state.setWordWrap(True)
        self.state.setObjectName("hint")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.confirm_button = self.buttons.addButton("They &match: make CORE", QDialogButtonBox.AcceptRole)
        self.confirm_button.setObjectName("primary")
        self.confirm_button.setToolTip(f"Only if the fingerprints (or the safety number) match what {name} reads "
                                       "on their node")
        self.confirm_button.setAccessibleName("Confirm: make CORE")
        self.cancel_button = self.buttons.button(QDialogButtonBox.Cancel)
        self.cancel_button.setToolTip("Keep the tier as it is")
        self.cancel_button.setAccessibleName("Cancel: keep the tier")
        self.confirm_button.setAutoDefault(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.state)
        layout.addWidget(self.buttons)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.cancel_button.setDefault(True)   # the button box picks the accept button on show: Enter must not trust


def _number(text: str, accessible: str) -> QLabel:
    label = QLabel(text)
    label.setFont(mono_font())
    label.setTextFormat(Qt.PlainText)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setAccessibleName(accessible)
    label.setToolTip(f"{accessible}: compare it group by group")
    return label


def _state(safety: dict | None) -> str:
    if safety is None:
        return "Chat is off on this node, so there is no safety number: compare the fingerprints."
    if safety.get("key_changed"):
        return ("WARNING: a contact you verified under this name or address had another key. "
                "Do not confirm unless you compared the new numbers in person.")
    if safety.get("verified"):
        return "You already compared the safety number with this peer in the Chat tab."
    return "Either the fingerprints or the safety number is enough; both are computed from the same keys."
