"""The dialog that sets or changes the passphrase protecting this node's key file."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout

from ..style import named


class PassphraseDialog(QDialog):
    """Asks for the current passphrase (when one is set) and the new one twice.

    It changes nothing by itself: ``submitted(old, new)`` carries the request, and the
    caller answers with :meth:`set_busy`, :meth:`show_error` or ``accept()``.
    """

    submitted = Signal(str, str)   # current ('' when none is set), new

    def __init__(self, protected: bool, parent=None):
        super().__init__(parent)
        self.protected = protected
        self.setWindowTitle("Change passphrase" if protected else "Set a passphrase")
        self.setMinimumWidth(440)
        intro = QLabel("The passphrase encrypts this node's key file on disk. It is asked for "
                       "every time Covey starts; if it is lost, the identity is lost."
                       if not protected else
                       "Give the current passphrase, then the new one twice.")
        intro.setWordWrap(True)
        intro.setObjectName("hint")
        self.error = named(QLabel(), "Passphrase error", "Why the passphrase was not changed.")
        self.error.setObjectName("error")
        self.error.setTextFormat(Qt.PlainText)
        self.error.setWordWrap(True)
        self.error.hide()
        self.current = self._field("Current passphrase", "The passphrase that protects the key file now.")
        self.new = self._field("New passphrase", "The passphrase that will protect the key file.")
        self.repeat = self._field("Repeat the new passphrase", "The new passphrase again, to catch typing mistakes.")
        form = QFormLayout()
        if protected:
            form.addRow("&Current", self.current)
        else:
            self.current.hide()
        form.addRow("&New", self.new)
        form.addRow("&Repeat", self.repeat)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_text = "Change passphrase" if protected else "Set passphrase"
        self.ok_button = named(self.buttons.button(QDialogButtonBox.Ok), self.ok_text,
                               "Encrypt the key file with the new passphrase.")
        self.ok_button.setText(self.ok_text)
        named(self.buttons.button(QDialogButtonBox.Cancel), "Cancel", "Close without changing anything.")
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.ok_button.setDefault(True)
        (self.current if protected else self.new).setFocus(Qt.OtherFocusReason)

    def _field(self, name: str, tip: str) -> QLineEdit:
        field = named(QLineEdit(), name, tip)
        field.setEchoMode(QLineEdit.Password)
        field.textChanged.connect(self.error.hide)
        return field

    def _submit(self) -> None:
        if self.protected and not self.current.text():
            self.show_error("Give the current passphrase.", self.current)
        elif not self.new.text():
            self.show_error("The new passphrase cannot be empty.", self.new)
        elif self.new.text() != self.repeat.text():
            self.show_error("The two new passphrases differ.", self.repeat)
        else:
            self.error.hide()
            self.submitted.emit(self.current.text(), self.new.text())

    def set_busy(self, busy: bool) -> None:
        """Disable input while the key file is re-encrypted (a second or two)."""
        for widget in (self.current, self.new, self.repeat, self.ok_button):
            widget.setEnabled(not busy)
        self.ok_button.setText("Encrypting the key…" if busy else self.ok_text)

    def show_error(self, text: str, field: QLineEdit | None = None) -> None:
        """Say why, and put the cursor in ``field`` (default: the current passphrase, or the new one)."""
        self.error.setText(text)
        self.error.show()
        field = field or (self.current if self.protected else self.new)
        field.setFocus(Qt.OtherFocusReason)
        field.selectAll()
