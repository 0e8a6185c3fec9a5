"""Render the main window offscreen to PNGs (kept in the artifact dir for a human to look at)."""
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from tests.gui.peer_book import populate


def grab(window, path) -> bool:
    QApplication.processEvents()   # let pending layout requests settle, as a shown window does
    return window.grab().save(str(path))


def is_a_real_picture(path) -> bool:
    image = QImage(str(path))
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    return image.width() >= 1000 and image.height() >= 600 and len(colors) > 20


def test_main_window_renders_to_png(window, make_node, run, address_of, qtbot, artifacts):
    populate(window, make_node, run, qtbot, address_of)
    window.show_status("3 of 5 peers online")
    path = artifacts / "main-window.png"
    assert grab(window, path)
    assert is_a_real_picture(path)
    assert window.peer_count.text() == "3 peers connected"


def test_main_window_with_encryption_off_renders_the_banner(window, make_node, run, address_of, qtbot,
                                                            artifacts):
    populate(window, make_node, run, qtbot, address_of)
    run(window.node.set_mode("none", "none"))
    qtbot.waitUntil(lambda: window.banner.isVisibleTo(window))
    path = artifacts / "main-window-encryption-off.png"
    assert grab(window, path)
    assert is_a_real_picture(path)


def test_add_peer_dialog_with_an_error_renders(window, qtbot, artifacts):
    from PySide6.QtCore import Qt
    qtbot.mouseClick(window.peers_panel.add_button, Qt.LeftButton)
    dialog = window.peers_panel.add_dialog
    dialog.address.setText("127.0.0.1:1")
    qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
    qtbot.waitUntil(dialog.error.isVisible)
    QApplication.processEvents()
    path = artifacts / "add-peer-error.png"
    assert dialog.grab().save(str(path))
    assert QImage(str(path)).width() >= 500
    dialog.reject()
