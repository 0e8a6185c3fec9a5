"""The safety number with one contact: 60 digits in groups and a QR code, and "Mark as verified"."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from ..style import grouped, mono_font


class SafetyDialog(QDialog):
    """Shows ``verify(peer)`` and ``qr_png(peer)``; ``mark_requested`` when the user confirms they match."""

    mark_requested = Signal()

    def __init__(self, name: str, view: dict, png: bytes, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Safety number with {name}")
        intro = QLabel(f"Compare these 60 digits with {name}, in person or on a call you trust, or scan "
                       "the code with their phone. If they match, nobody is in the middle.")
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.PlainText)
        self.digits = QLabel(grouped(view["safety_number"], 5, 4))
        self.digits.setFont(mono_font(14))
        self.digits.setAlignment(Qt.AlignCenter)
        self.digits.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.digits.setAccessibleName("Safety number")
        self.digits.setAccessibleDescription(view["grouped"])
        self.qr = QLabel()
        self.qr.setAlignment(Qt.AlignCenter)
        self.qr.setAccessibleName("Safety number QR code")
        pixmap = QPixmap()
        if pixmap.loadFromData(png, "PNG"):
            self.qr.setPixmap(pixmap.scaled(220, 220, Qt.KeepAspectRatio, Qt.FastTransformation))
        else:
            self.qr.setText("(the QR code could not be drawn)")
        self.state = QLabel()
        self.state.setAlignment(Qt.AlignCenter)
        self.state.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.mark_button = self.buttons.addButton("Mark as &verified", QDialogButtonBox.ActionRole)
        self.mark_button.setObjectName("primary")
        self.mark_button.setToolTip("Only if the digits match: stored with the contact and shown next to "
                                    "the conversation; a later key change is then refused loudly")
        self.mark_button.setAccessibleName("Mark as verified")
        self.buttons.button(QDialogButtonBox.Close).setToolTip("Close this window")
        self.mark_button.clicked.connect(self.mark_requested)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.digits)
        layout.addWidget(self.qr)
        layout.addWidget(self.state)
        layout.addWidget(self.buttons)
        self.show_state(view)

    def show_state(self, view: dict) -> None:
        if view.get("key_changed"):
            self.state.setText("This contact's key CHANGED since you verified it: do not mark it "
                               "before you compared the new number in person.")
            self.state.setStyleSheet("color: #b71c1c; font-weight: bold;")
        elif view["verified"]:
            self.state.setText("✓ Verified")
            self.state.setStyleSheet("color: #2e7d32; font-weight: bold;")
        else:
            self.state.setText("Not verified yet")
            self.state.setStyleSheet("color: #6b7383;")
        self.mark_button.setEnabled(not view["verified"] or bool(view.get("key_changed")))
