"""The window is built from the panel registry: one line adds a tab; a tab without its service is not shown."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel

from desktop import tabs
from desktop.window import MainWindow


def titles(window) -> list[str]:
    return [window.tabs.tabText(i) for i in range(window.tabs.count())]


def test_the_window_shows_the_registered_panels(window):
    assert titles(window) == ["Node", "Network", "Encryption", "Chat", "Trust", "Training", "Knowledge", "Tasks"]
    for panel in tabs.PANELS:
        assert getattr(window, panel.key) is not None
    assert window.peers_panel.details.parent() is not None, "the selected peer's details sit in the Trust tab"


def test_a_tab_whose_service_the_node_does_not_run_is_not_shown(make_node, qtbot, monkeypatch):
    node = make_node("nolearning")
    monkeypatch.setattr(tabs, "find_service", lambda node, name: None)
    win = MainWindow(node)
    qtbot.addWidget(win)
    assert titles(win) == ["Node", "Network", "Encryption", "Trust"]
    assert win.training_panel is None and win.tasks_panel is None and win.chat_panel is None


class Notes(QLabel):
    """A stand-in for a new service's tab: built with its service, fed by the bridge."""

    status = Signal(str)

    def __init__(self, node, service):
        super().__init__(f"notes of {service}")
        self.seen = []

    def on_event_settings_changed(self, event):
        self.seen.append(event.data.get("changes"))
        self.status.emit("settings changed")


def test_one_registry_line_adds_a_tab_that_receives_events_and_reports(make_node, qtbot, run, monkeypatch):
    node = make_node("zoe")
    panels = tabs.PANELS + (tabs.Panel("notes_panel", Notes, tabs.TAB, "Notes", service="notes"),)
    monkeypatch.setattr(tabs, "PANELS", panels)
    real = tabs.find_service
    monkeypatch.setattr(tabs, "find_service",
                        lambda node, name: "the notes service" if name == "notes" else real(node, name))
    win = MainWindow(node)
    qtbot.addWidget(win)
    assert titles(win) == ["Node", "Network", "Encryption", "Chat", "Trust", "Training", "Knowledge", "Tasks", "Notes"]
    assert win.notes_panel.text() == "notes of the notes service"
    run(node.set_mode("asymmetric", "none"))
    qtbot.waitUntil(lambda: win.notes_panel.seen != [])
    assert win.statusBar().currentMessage() == "settings changed"


def test_find_service_asks_the_node(make_node):
    node = make_node("yan")
    assert tabs.find_service(node, "learning") is not None
    assert tabs.find_service(node, "no-such-service") is None
