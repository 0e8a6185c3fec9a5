"""The Node tab: who this node is, how peers reach it, its key file, and what it did lately."""
from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)
from qasync import asyncSlot

from core.config import MAX_NAME
from core.contact_link import LOOPBACK, best_addresses, contact_link

from ..actions import run_action
from ..style import caption, grouped, mono_font, named
from .event_log import EventLog
from .passphrase_dialog import PassphraseDialog
from .qr_code import qr_pixmap

QR_SIDE = 180          # pixels at most (the code keeps whole pixels per module)


def keeping_focus(widget: QWidget):
    """A ``busy`` for :func:`run_action` that disables ``widget`` and, when it is enabled
    again, gives it back the keyboard focus it had (a disabled widget loses it)."""
    had_focus = False

    def busy(on: bool) -> None:
        nonlocal had_focus
        if on:
            had_focus = widget.window().focusWidget() is widget
        widget.setEnabled(not on)
        if not on and had_focus:
            widget.setFocus(Qt.OtherFocusReason)
    return busy


class NodePanel(QScrollArea):
    """Shows this node and sends renames, discovery and passphrase changes to it."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, parent=None):
        super().__init__(parent)
        self.node = node
        self.passphrase_dialog: PassphraseDialog | None = None
        self.chosen_address: str | None = None    # the link's address the person picked, if any
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self._identity_box())
        layout.addWidget(self._share_box())
        layout.addWidget(self._network_box())
        self.log = EventLog(node.events)
        layout.addWidget(self.log, 1)
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.refresh()

    # -- building ---------------------------------------------------------------------
    def _identity_box(self) -> QGroupBox:
        box = QGroupBox("This node")
        self.name = named(QLineEdit(), "Node name", "How peers see this node. Press Enter or Rename to change it.")
        self.name.setMaxLength(MAX_NAME)
        self.rename_button = named(QPushButton("Rename"), "Rename this node",
                                   "Give this node the name typed beside; peers see it at their next connection.")
        self.fingerprint = named(QLabel(), "Fingerprint",
                                 "A short form of the id: compare it with a peer out of band before trusting it.")
        self.fingerprint.setObjectName("fingerprint")
        self.fingerprint.setFont(mono_font(13))
        self.copy_fingerprint = named(QPushButton("Copy"), "Copy the fingerprint",
                                      "Copy the fingerprint to the clipboard.")
        self.id_label = named(QLabel(), "Node id", "This node's full id: its public key, 64 hex digits.")
        self.id_label.setObjectName("peerId")
        self.id_label.setFont(mono_font(9))
        self.copy_id = named(QPushButton("Copy"), "Copy the id",
                             "Copy the full id (64 hex digits): a peer pastes it as the key in Add peer.")
        self.error = named(QLabel(), "Node error", "Why the last change did not work.")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        for label in (self.fingerprint, self.id_label, self.error):
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setTextFormat(Qt.PlainText)
        grid = QGridLayout(box)
        grid.addWidget(caption("Name"), 0, 0)
        grid.addWidget(self.name, 0, 1)
        grid.addWidget(self.rename_button, 0, 2)
        grid.addWidget(caption("Fingerprint"), 1, 0, Qt.AlignTop)
        grid.addWidget(self.fingerprint, 1, 1)
        grid.addWidget(self.copy_fingerprint, 1, 2, Qt.AlignTop)
        grid.addWidget(caption("ID"), 2, 0, Qt.AlignTop)
        grid.addWidget(self.id_label, 2, 1)
        grid.addWidget(self.copy_id, 2, 2, Qt.AlignTop)
        grid.addWidget(self.error, 3, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.name.textChanged.connect(self._name_edited)
        self.name.returnPressed.connect(self.rename)
        self.rename_button.clicked.connect(self.rename)
        self.copy_fingerprint.clicked.connect(
            lambda: self._copy(self.node.identity.fingerprint, "Fingerprint copied to the clipboard"))
        self.copy_id.clicked.connect(lambda: self._copy(self.node.identity.id, "ID copied to the clipboard"))
        return box

    def _share_box(self) -> QGroupBox:
        box = QGroupBox("Share this node")
        self.qr = named(QLabel(), "Contact link QR code",
                        "The contact link as a QR code: a peer scans it instead of typing.")
        self.qr.setFixedSize(QR_SIDE, QR_SIDE)
        self.qr.setAlignment(Qt.AlignCenter)
        self.share_address = named(QComboBox(), "Address in the link",
                                   "Which of this node's addresses the link gives: one the peer can reach.")
        self.link = named(QLineEdit(), "Contact link",
                          "The link a peer pastes into Add peer (or drops on it): it holds the address "
                          "and the id, so the connection is refused unless this node answers.")
        self.link.setReadOnly(True)
        self.link.setFont(mono_font(9))
        self.copy_link = named(QPushButton("Copy link"), "Copy the contact link",
                               "Copy the contact link to the clipboard.")
        hint = QLabel("Send the link to a peer over a channel you trust, or let them scan the code. "
                      "Add peer fills in the address and the id from it.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(caption("Address in the link"))
        side.addWidget(self.share_address)
        side.addWidget(caption("Contact link"))
        side.addWidget(self.link)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_link)
        buttons.addStretch(1)
        side.addLayout(buttons)
        side.addWidget(hint)
        side.addStretch(1)
        row = QHBoxLayout(box)
        row.addWidget(self.qr, 0, Qt.AlignTop)
        row.addLayout(side, 1)
        self.share_address.currentIndexChanged.connect(self._show_link)
        self.share_address.activated.connect(self._address_chosen)
        self.copy_link.clicked.connect(lambda: self._copy(self.link.text(), "Contact link copied to the clipboard"))
        return box

    def _network_box(self) -> QGroupBox:
        box = QGroupBox("On this computer")
        self.listen = named(QLabel(), "Listening addresses", "The addresses this node accepts connections on.")
        self.listen.setObjectName("listen")
        self.listen.setFont(mono_font(9))
        self.onion = named(QLabel(), "Onion address", "The address peers reach this node at through Tor.")
        self.onion.setObjectName("listen")
        self.onion.setFont(mono_font(9))
        self.onion.setWordWrap(True)
        for label in (self.listen, self.onion):
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setTextFormat(Qt.PlainText)
        self.discovery = named(QCheckBox("Find nodes on the local network and announce this one"),
                               "LAN discovery", "Send and hear beacons on the local network, so nodes "
                               "nearby find each other without typing addresses.")
        self.key_state = named(QLabel(), "Key file protection", "Whether the key file on disk is encrypted.")
        self.key_state.setWordWrap(True)
        self.passphrase_button = named(QPushButton(), "Set or change the passphrase",
                                       "Encrypt the key file with a passphrase, or replace the one it has.")
        self.home = named(QLineEdit(str(self.node.home)), "Data folder",
                          "Where this node keeps its key, settings and data.")
        self.home.setReadOnly(True)
        self.open_home = named(QPushButton("Open data folder"), "Open the data folder",
                               "Show the data folder in the file manager.")
        grid = QGridLayout(box)
        grid.addWidget(caption("Listening"), 0, 0, Qt.AlignTop)
        grid.addWidget(self.listen, 0, 1, 1, 2)
        grid.addWidget(caption("Onion address"), 1, 0, Qt.AlignTop)
        grid.addWidget(self.onion, 1, 1, 1, 2)
        grid.addWidget(caption("LAN discovery"), 2, 0)
        grid.addWidget(self.discovery, 2, 1, 1, 2)
        grid.addWidget(caption("Key file"), 3, 0)
        grid.addWidget(self.key_state, 3, 1)
        grid.addWidget(self.passphrase_button, 3, 2)
        grid.addWidget(caption("Data folder"), 4, 0)
        grid.addWidget(self.home, 4, 1)
        grid.addWidget(self.open_home, 4, 2)
        grid.setColumnStretch(1, 1)
        self.discovery.toggled.connect(self.set_discovery)
        self.passphrase_button.clicked.connect(self.ask_passphrase)
        self.open_home.clicked.connect(self.open_data_folder)
        return box

    # -- state --------------------------------------------------------------------------
    def refresh(self) -> None:
        info = self.node.info()
        if not self.name.isModified() or self.name.text().strip() == info["name"]:   # never under the typing
            self.name.blockSignals(True)
            self.name.setText(info["name"])
            self.name.blockSignals(False)
        self._update_rename()
        self.fingerprint.setText(grouped(info["fingerprint"].replace(" ", ""), 4, 4))
        self.id_label.setText(grouped(info["id"], 8, 4))
        self.listen.setText("\n".join(info["listen"]) or "not listening")
        self._show_onion(info.get("onion"))
        self._show_addresses(info)
        self.discovery.blockSignals(True)
        self.discovery.setChecked(self.node.settings.discovery)
        self.discovery.blockSignals(False)
        protected = self.node.identity.protected
        self.key_state.setText("protected by a passphrase" if protected else "not protected: anyone who can "
                               "read the data folder can use this identity")
        self.passphrase_button.setText("Change passphrase…" if protected else "Set passphrase…")

    def _show_onion(self, onion: str | None) -> None:
        self.onion.setFont(mono_font(9) if onion else self.font())
        if onion:
            self.onion.setText(onion)
        elif self.node.settings.proxy_mode == "tor":
            self.onion.setText("not published yet: Tor is starting")
        else:
            self.onion.setText("none: Tor is off (the Network tab turns it on)")

    def _address_chosen(self, *_) -> None:
        self.chosen_address = self.share_address.currentData()

    def _show_addresses(self, info: dict) -> None:
        """Offer the addresses, best first; the person's choice stays while it is one of them."""
        chosen = self.chosen_address
        addresses = best_addresses(info["listen"], info.get("onion"))
        self.share_address.blockSignals(True)
        self.share_address.clear()
        for address in addresses:
            self.share_address.addItem(address + ("  (this computer only)" if address.startswith(LOOPBACK) else ""),
                                       address)
        if chosen in addresses:
            self.share_address.setCurrentIndex(addresses.index(chosen))
        self.share_address.blockSignals(False)
        self._show_link()

    def _show_link(self, *_) -> None:
        address = self.share_address.currentData()
        if not address:
            self.link.setText("")
            self.link.setPlaceholderText("not listening yet")
            self.qr.clear()
            self.qr.setText("no address yet")
        else:
            link = contact_link(address, self.node.identity.id)
            if link == self.link.text() and self.qr.pixmap() is not None and not self.qr.pixmap().isNull():
                return   # the same link (a tor progress event, a settings change): keep the drawn code
            self.link.setText(link)
            self.link.setCursorPosition(0)
            ratio = self.qr.devicePixelRatioF()   # whole device pixels per module at any scale
            pixmap = qr_pixmap(link, int(QR_SIDE * ratio))
            pixmap.setDevicePixelRatio(ratio)
            self.qr.setPixmap(pixmap)
        self.copy_link.setEnabled(bool(address))

    def _name_edited(self) -> None:
        self._update_rename()
        self.error.hide()

    def _update_rename(self) -> None:
        self.rename_button.setEnabled(self.name.text().strip() != self.node.identity.name)

    def on_event_node_started(self, event) -> None:
        self.refresh()

    on_event_settings_changed = on_event_node_started

    def on_event_tor_status(self, event) -> None:
        info = self.node.info()
        info["onion"] = event.data.get("address") or info.get("onion")
        self._show_onion(info["onion"])
        self._show_addresses(info)

    # -- actions ------------------------------------------------------------------------
    def _copy(self, text: str, said: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.status.emit(said)

    @asyncSlot()
    async def rename(self) -> None:
        name = self.name.text()
        if not self.rename_button.isEnabled():
            return

        def reset(_: str) -> None:
            self.name.setText(self.node.identity.name)   # the old name stays
            self.name.setFocus(Qt.OtherFocusReason)
            self.name.selectAll()

        def renaming(busy: bool) -> None:
            if busy:
                self.rename_button.setEnabled(False)
            else:
                self._update_rename()
        await run_action(self, self.node.set_name(name), failure="Could not rename this node",
                         busy=renaming, on_error=reset, error_label=self.error,
                         success=lambda info: f"This node is now called {info['name']}")

    @asyncSlot(bool)
    async def set_discovery(self, enabled: bool) -> None:
        def undo(_: str) -> None:
            self.discovery.blockSignals(True)
            self.discovery.setChecked(self.node.settings.discovery)
            self.discovery.blockSignals(False)
        await run_action(self, self.node.set_discovery(enabled), failure="Could not change LAN discovery",
                         busy=keeping_focus(self.discovery), on_error=undo, error_label=self.error,
                         success="LAN discovery is on" if enabled else "LAN discovery is off")

    def ask_passphrase(self) -> None:
        dialog = PassphraseDialog(self.node.identity.protected, self)
        dialog.submitted.connect(self.change_passphrase)
        self.passphrase_dialog = dialog
        dialog.open()

    @asyncSlot(str, str)
    async def change_passphrase(self, old: str, new: str) -> None:
        dialog = self.passphrase_dialog
        if dialog is None:
            return

        def done(_: dict) -> str:
            dialog.accept()
            return "The key file is now protected by the new passphrase"
        await run_action(self, self.node.set_passphrase(old or None, new), failure="Could not change the passphrase",
                         busy=dialog.set_busy, on_error=dialog.show_error, success=done)

    def open_data_folder(self) -> None:
        url = QUrl.fromLocalFile(str(self.node.home))
        if QDesktopServices.openUrl(url):
            self.status.emit(f"Opened {self.node.home}")
        else:
            self.failed.emit(f"Could not open the data folder {self.node.home}: no file manager answered")
