"""The Network tab driven as a user does: radio clicks, typed fields, Apply and Test, against
real nodes on 127.0.0.1 and a real SOCKS5 proxy (microsocks)."""
from __future__ import annotations


import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from desktop.network.socks_box import NO_PASSWORD, PASSWORD_SET
from desktop.network.tor_box import NOT_READY
from tests.socks import free_port, needs_microsocks, socks_proxy  # noqa: F401  (the fixture)

@pytest.fixture
def panel(window, qtbot):
    """The Network tab, opened by clicking its tab."""
    tabs = window.tabs
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == "Network")
    qtbot.mouseClick(tabs.tabBar(), Qt.LeftButton, pos=tabs.tabBar().tabRect(index).center())
    assert tabs.currentWidget() is window.network_panel
    return window.network_panel


def click(qtbot, widget):
    assert widget.isVisible() and widget.isEnabled(), widget.accessibleName()
    qtbot.mouseClick(widget, Qt.LeftButton, pos=widget.rect().center())


def type_socks(qtbot, panel, host, port, user, password):
    for field, text in ((panel.socks.host, host), (panel.socks.port, str(port)),
                        (panel.socks.user, user), (panel.socks.password, password)):
        field.clear()
        qtbot.keyClicks(field, text)


def wait_idle(qtbot, button):
    qtbot.waitUntil(button.isEnabled, timeout=15000)


def test_socks5_applied_password_write_only_and_off_again(panel, qtbot, window):
    node = window.node
    assert panel.off_radio.isChecked() and not panel.socks.isVisible()
    click(qtbot, panel.socks_radio)
    type_socks(qtbot, panel, "127.0.0.1", 1080, "covey", "s3cret")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: node.proxy_view()["mode"] == "socks5", timeout=15000)
    wait_idle(qtbot, panel.apply_button)
    assert node.proxy_view() == {"mode": "socks5", "host": "127.0.0.1", "port": 1080, "user": "covey",
                                 "password_set": True, "tor": None}
    assert panel.socks.password.text() == "" and panel.socks.password.placeholderText() == PASSWORD_SET
    assert panel.socks.password.echoMode() == panel.socks.password.EchoMode.Password
    panel.grab()   # render: the secret appears in no label, field or tooltip
    for widget in panel.findChildren(object):
        for getter in ("text", "placeholderText", "toolTip"):
            assert "s3cret" not in str(getattr(widget, getter, lambda: "")()), widget
    assert panel.current.text() == "In effect: SOCKS5 proxy 127.0.0.1:1080"
    assert window.statusBar().currentMessage() == "Network: SOCKS5 proxy 127.0.0.1:1080"

    click(qtbot, panel.off_radio)
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: node.proxy_view()["mode"] == "off", timeout=15000)
    wait_idle(qtbot, panel.apply_button)
    assert node.proxy_view()["password_set"] is False
    assert panel.current.text() == "In effect: direct connections (no proxy)"
    assert panel.socks.password.placeholderText() == NO_PASSWORD


def test_a_bad_port_is_refused_in_words_and_nothing_changes(panel, qtbot, window):
    click(qtbot, panel.socks_radio)
    type_socks(qtbot, panel, "127.0.0.1", "", "", "")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(panel.error.isVisible)
    assert panel.error.text() == "Could not change the proxy: the proxy's port must be a number from 1 to 65535"
    assert window.node.proxy_view()["mode"] == "off"


@needs_microsocks
def test_test_reports_success_through_a_real_proxy_and_the_reason_on_a_dead_port(panel, qtbot, window,
                                                                                  socks_proxy):
    click(qtbot, panel.socks_radio)
    type_socks(qtbot, panel, "127.0.0.1", socks_proxy, "covey", "s3cret")
    click(qtbot, panel.socks.test_button)
    qtbot.waitUntil(lambda: panel.socks.test_result.text() != "", timeout=15000)
    assert panel.socks.test_result.text() == f"The proxy works: it reached 127.0.0.1:{window.node.transport.port}."
    assert window.node.proxy_view()["mode"] == "off", "Test changes nothing"

    wait_idle(qtbot, panel.socks.test_button)
    dead = free_port()
    type_socks(qtbot, panel, "127.0.0.1", dead, "covey", "s3cret")
    click(qtbot, panel.socks.test_button)
    qtbot.waitUntil(lambda: panel.socks.test_result.text().startswith("Proxy test failed"), timeout=15000)
    assert panel.socks.test_result.text() == (f"Proxy test failed: the proxy at 127.0.0.1:{dead} cannot be used: "
                                              "connection refused")

    wait_idle(qtbot, panel.socks.test_button)
    type_socks(qtbot, panel, "127.0.0.1", socks_proxy, "covey", "wrong")
    click(qtbot, panel.socks.test_button)
    qtbot.waitUntil(lambda: "refused the" in panel.socks.test_result.text(), timeout=15000)
    assert "refused the user name or password" in panel.socks.test_result.text()


@needs_microsocks
def test_test_uses_the_stored_password_when_none_is_typed(panel, qtbot, window, socks_proxy, run):
    run(window.node.set_proxy("socks5", "127.0.0.1", socks_proxy, "covey", "s3cret"))
    qtbot.waitUntil(lambda: panel.socks.host.text() == "127.0.0.1")
    assert panel.socks_radio.isChecked() and panel.socks.password.text() == ""
    click(qtbot, panel.socks.test_button)
    qtbot.waitUntil(lambda: panel.socks.test_result.text() != "", timeout=15000)
    assert panel.socks.test_result.text().startswith("The proxy works")


def test_tor_without_a_network_is_refused_in_words(panel, qtbot, window):
    click(qtbot, panel.tor_radio)
    assert panel.tor.isVisible() and panel.tor.start_radio.isChecked()
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(panel.error.isVisible)
    text = panel.error.text()
    assert text.startswith("Could not change the proxy: Tor cannot start without a tor network")
    assert "--" not in text and "covey " not in text
    assert window.node.proxy_view()["mode"] == "off", "nothing changed"


def test_tor_that_cannot_be_reached_shows_the_fail_closed_state(panel, qtbot, window):
    click(qtbot, panel.tor_radio)
    click(qtbot, panel.tor.running_radio)
    qtbot.keyClicks(panel.tor.control, f"127.0.0.1:{free_port()}")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(panel.error.isVisible, timeout=15000)
    assert "cannot reach tor's control port" in panel.error.text()
    wait_idle(qtbot, panel.apply_button)
    assert window.node.proxy_view()["mode"] == "tor"      # chosen, and failing closed
    assert panel.tor.not_ready.isVisible() and panel.tor.not_ready.text() == NOT_READY
    assert not panel.tor.new_identity.isEnabled() and not panel.tor.copy_onion.isEnabled()
    assert panel.current.text() == "In effect: Tor (not running)"


def test_every_control_has_a_tooltip_and_an_accessible_name(panel):
    from PySide6.QtWidgets import QAbstractButton, QLineEdit, QListWidget, QProgressBar
    controls = [w for kind in (QAbstractButton, QLineEdit, QListWidget, QProgressBar)
                for w in panel.findChildren(kind)]
    assert len(controls) >= 17
    for widget in controls:
        assert widget.toolTip() and widget.accessibleName(), widget


def test_copy_puts_the_onion_address_on_the_clipboard(panel, qtbot):
    panel.tor.show_status({"running": True, "bootstrap": 100, "summary": "Done",
                           "address": "abcdef.onion:8102"}, chosen=True)
    panel.tor.setVisible(True)
    click(qtbot, panel.tor.copy_onion)
    assert QGuiApplication.clipboard().text() == "abcdef.onion:8102"
    assert not panel.tor.not_ready.isVisible()


def test_screenshot(panel, qtbot, artifacts):
    click(qtbot, panel.socks_radio)
    panel.window().resize(900, 600)
    qtbot.wait(50)
    assert panel.window().grab().save(str(artifacts / "network.png"))
    click(qtbot, panel.tor_radio)
    panel.tor.show_status({"running": True, "bootstrap": 45, "summary": "Loading relay descriptors"},
                          chosen=True)
    qtbot.wait(50)
    assert panel.tor.not_ready.isVisible()
    assert panel.window().grab().save(str(artifacts / "network-tor.png"))
