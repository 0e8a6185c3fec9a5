"""The SOCKS5 fields of the Network tab: host, port, user, a write-only password, and Test."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton

from core.errors import BadRequest

from ..style import named   # also what the rest of the Network tab uses

PASSWORD_SET = "set (type a new one to replace it)"
NO_PASSWORD = "none stored"


class Socks5Box(QGroupBox):
    """The proxy's address and login; the password is never read back, only replaced."""

    def __init__(self, parent=None):
        super().__init__("SOCKS5 proxy", parent)
        self.host = named(QLineEdit(), "Proxy host", "The proxy's host name or IP address.")
        self.port = named(QLineEdit(), "Proxy port", "The proxy's port (1 to 65535).")
        self.port.setValidator(QIntValidator(1, 65535, self.port))
        self.user = named(QLineEdit(), "Proxy user",
                           "The user name for the proxy; leave empty when it needs no login.")
        self.password = named(QLineEdit(), "Proxy password",
                               "The proxy's password. It is stored but never shown: "
                               "type a new one to replace the stored one.")
        self.password.setEchoMode(QLineEdit.Password)
        self.test_button = named(QPushButton("Test"), "Test the proxy",
                                  "Log in to the proxy and have it connect to this node, "
                                  "with the values typed here. Nothing is changed.")
        self.test_result = named(QLabel(), "Proxy test result", "The outcome of the last test.")
        self.test_result.setTextFormat(Qt.PlainText)
        self.test_result.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        form.addRow(test_row)

    def show_view(self, view: dict) -> None:
        """Fill the fields from ``node.proxy_view()`` (the password only as "set")."""
        if view["mode"] == "socks5":   # otherwise keep what the user typed
            self.host.setText(view["host"] or "")
            self.port.setText(str(view["port"] or ""))
            self.user.setText(view["user"] or "")
        self.password.clear()
        self.password.setPlaceholderText(PASSWORD_SET if view["password_set"] else NO_PASSWORD)

    def values(self) -> tuple[str, int, str, str | None]:
        """host, port, user and the new password (None: keep the stored one); BadRequest in words."""
        host = self.host.text().strip()
        if not host:
            raise BadRequest("give the proxy's host")
        port_text = self.port.text().strip()
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise BadRequest("the proxy's port must be a number from 1 to 65535")
        return host, int(port_text), self.user.text().strip(), self.password.text() or None
