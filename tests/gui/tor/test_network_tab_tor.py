"""The Network tab's Tor part against a real tor in a private Tor network, driven as a user
does: the Tor radio, the config file or control address typed in, Apply; then the bootstrap
bar, the onion address and its Copy button, Refresh circuits and New identity."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

pytestmark = [pytest.mark.tor, pytest.mark.timeout(240),
              pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")]


@pytest.fixture
def panel(window, qtbot):
    """The Network tab, opened by clicking its tab."""
    tabs = window.tabs
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == "Network")
    qtbot.mouseClick(tabs.tabBar(), Qt.LeftButton, pos=tabs.tabBar().tabRect(index).center())
    return window.network_panel


def click(qtbot, widget):
    assert widget.isVisible() and widget.isEnabled(), widget.accessibleName()
    qtbot.mouseClick(widget, Qt.LeftButton, pos=widget.rect().center())


def test_start_tor_shows_bootstrap_onion_circuits_and_new_identity(panel, qtbot, window, network_torrc):
    click(qtbot, panel.tor_radio)
    assert panel.tor.start_radio.isChecked()
    qtbot.keyClicks(panel.tor.config, str(network_torrc))
    click(qtbot, panel.apply_button)

    qtbot.waitUntil(lambda: panel.tor.progress.value() == 100, timeout=120000)
    assert panel.tor.summary.text()
    qtbot.waitUntil(lambda: panel.tor.onion.text().endswith(".onion:8102"), timeout=120000)
    assert not panel.tor.not_ready.isVisible()
    assert not panel.error.isVisible()
    assert panel.current.text() == "In effect: Tor (100% started)"
    assert window.node.info()["onion"] == panel.tor.onion.text()

    click(qtbot, panel.tor.copy_onion)
    assert QGuiApplication.clipboard().text() == panel.tor.onion.text()

    click(qtbot, panel.tor.refresh_circuits)
    qtbot.waitUntil(lambda: panel.tor.circuits.count() > 0, timeout=30000)

    click(qtbot, panel.tor.new_identity)
    qtbot.waitUntil(lambda: "new identity" in window.statusBar().currentMessage() or panel.error.isVisible(),
                    timeout=30000)
    assert not panel.error.isVisible(), panel.error.text()
    assert panel.tor.new_identity.isEnabled()


def test_use_a_running_tor_by_its_control_address(panel, qtbot, window, running_tor):
    click(qtbot, panel.tor_radio)
    click(qtbot, panel.tor.running_radio)
    qtbot.keyClicks(panel.tor.control, f"127.0.0.1:{running_tor.control_port}")
    click(qtbot, panel.apply_button)
    qtbot.waitUntil(lambda: panel.tor.progress.value() == 100, timeout=120000)
    view = window.node.proxy_view()
    assert view["mode"] == "tor" and view["tor"]["running"] and not view["tor"]["owned"]
    assert not panel.tor.not_ready.isVisible() and not panel.error.isVisible()
