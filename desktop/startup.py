"""Before the window: create the identity on first run and unlock a protected key."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QVBoxLayout)

from core.errors import PassphraseRequired, WrongPassphrase
from core.identity import Identity
from core.node import Node


AskName = Callable[[str], "tuple[str, bytes | None] | None"]
AskPassphrase = Callable[[str], "bytes | None"]


class FirstRunDialog(QDialog):
    """Name this node and optionally protect its key with a passphrase."""

    def __init__(self, default_name: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Welcome to Covey")
        self.setMinimumWidth(460)
        intro = QLabel("This is the first start with this data directory. Covey will create a "
                       "new identity (an Ed25519 key) for this node.")
        intro.setWordWrap(True)
        self.name = QLineEdit(default_name, placeholderText="how peers will see this node")
        self.passphrase = QLineEdit(echoMode=QLineEdit.Password,
                                    placeholderText="optional; protects the key file on disk")
        self.confirm = QLineEdit(echoMode=QLineEdit.Password, placeholderText="repeat the passphrase")
        form = QFormLayout()
        form.addRow("Node &name", self.name)
        form.addRow("&Passphrase", self.passphrase)
        form.addRow("&Repeat", self.confirm)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Create identity")
        self.buttons.accepted.connect(self._check)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def _check(self) -> None:
        if self.passphrase.text() != self.confirm.text():
            self.error.setText("The two passphrases differ.")
            self.error.show()
            return
        self.accept()

    def answer(self) -> tuple[str, bytes | None]:
        """(name, passphrase or None) as entered."""
        secret = self.passphrase.text()
        return self.name.text().strip(), secret.encode() if secret else None


class PassphraseDialog(QDialog):
    """Asks for the passphrase of the identity key; shows why the last one failed."""

    def __init__(self, home: Path, error: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Unlock identity")
        self.setMinimumWidth(420)
        text = QLabel(f"The identity key in <b>{home}</b> is protected by a passphrase.")
        text.setWordWrap(True)
        self.passphrase = QLineEdit(echoMode=QLineEdit.Password)
        self.error = QLabel(error)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setVisible(bool(error))
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Unlock")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.passphrase)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.passphrase.setFocus(Qt.OtherFocusReason)


def ask_name_dialog(default: str) -> tuple[str, bytes | None] | None:
    dialog = FirstRunDialog(default)
    return dialog.answer() if dialog.exec() == QDialog.Accepted else None


def ask_passphrase_dialog(home: Path) -> AskPassphrase:
    def ask(error: str) -> bytes | None:
        dialog = PassphraseDialog(home, error)
        if dialog.exec() != QDialog.Accepted:
            return None
        return dialog.passphrase.text().encode()
    return ask


def open_node(home: Path, overrides: dict, passphrase: bytes | None,
              ask_name: AskName, ask_passphrase: AskPassphrase) -> Node | None:
    """Name a new identity if the home has none, unlock it, and build the node (the
    identity itself is made by ``core.identity.ensure_identity``, through ``Node.open``).

    ``ask_name(default)`` returns (name, passphrase or None) or None (cancelled);
    ``ask_passphrase(error)`` returns a passphrase or None (cancelled). Returns
    None when the user cancels. Runs before the event loop starts.
    """
    home = Path(home)
    create_as = None
    if not Identity.exists(home):
        answer = ask_name(overrides.get("name") or "")
        if answer is None:
            return None
        create_as, passphrase = answer
    error = ""
    while True:
        try:
            return Node.open(home, overrides, passphrase, create_as=create_as)
        except PassphraseRequired:
            error = ""
        except WrongPassphrase:
            error = "That passphrase does not unlock the key. Check it and try again."
        passphrase = ask_passphrase(error)
        if passphrase is None:
            return None
