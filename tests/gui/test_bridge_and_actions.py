"""The bridge coalesces bursts into one redraw; panels follow payloads; run_action words failures."""
from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from core.errors import BadRequest
from core.events import EventBus
from desktop.actions import run_action, run_action_now
from desktop.bridge import EventBridge, Refresh
from desktop.peers.peers_model import CONNECTED, MODE

BURST = 500


class Counter(QWidget):
    """Counts every event it handles and every redraw its Refresh runs."""

    def __init__(self):
        super().__init__()
        self.handled = 0
        self.redraws = 0
        self.update_view = Refresh(self.redraw, self)

    def redraw(self):
        self.redraws += 1

    def on_event_peer_connected(self, event):
        self.handled += 1
        self.update_view.request()


def test_a_burst_reaches_every_handler_but_redraws_once(qtbot):
    bus = EventBus()
    bridge = EventBridge(bus)
    widget = Counter()
    qtbot.addWidget(widget)
    bridge.register(widget)
    for i in range(BURST):
        bus.emit("peer_connected", peer=f"p{i}")
    assert widget.handled == BURST and widget.redraws == 0
    qtbot.waitUntil(lambda: not widget.update_view.pending)
    assert widget.redraws == 1
    bus.emit("peer_connected", peer="late")   # the next burst gets its own redraw
    qtbot.waitUntil(lambda: widget.redraws == 2)
    assert widget.handled == BURST + 1


def test_closing_the_bridge_drops_a_pending_redraw(qtbot):
    bus = EventBus()
    bridge = EventBridge(bus)
    widget = Counter()
    qtbot.addWidget(widget)
    bridge.register(widget)
    bus.emit("peer_connected", peer="p")
    assert widget.update_view.pending
    bridge.close()   # the node is stopping: nothing may read it any more
    assert not widget.update_view.pending
    qtbot.wait(300)
    assert widget.redraws == 0
    bus.emit("peer_connected", peer="after")
    assert widget.handled == 1


def test_a_burst_of_peer_events_redraws_the_invitations_once(window, qtbot):
    panel = window.training_panel
    panel.invitations_update.cancel()
    redraws = []
    show = panel.invitations.show_members
    panel.invitations.show_members = lambda *a: (redraws.append(1), show(*a))
    for i in range(200):
        window.node.events.emit("tier_changed", peer=f"{i:064x}", tier="core", previous="unknown")
    assert redraws == []
    qtbot.waitUntil(lambda: not panel.invitations_update.pending)
    assert len(redraws) == 1


def test_the_peers_table_follows_connections_without_rereading_the_peer_list(window, make_node, run, qtbot,
                                                                             address_of):
    node = window.node
    reads = []
    list_peers = node.list_peers
    node.list_peers = lambda: (reads.append(1), list_peers())[1]
    model = window.peers_panel.model
    bob = make_node("bob")
    run(bob.add_peer(address_of(node)))
    qtbot.waitUntil(lambda: model.row_of(bob.identity.id) >= 0
                    and model.data(model.index(model.row_of(bob.identity.id), CONNECTED)) == "yes")
    assert model.data(model.index(model.row_of(bob.identity.id), MODE)) == "asymmetric"
    assert window.peer_count.text() == "1 peer connected"
    run(bob.stop())
    qtbot.waitUntil(lambda: model.data(model.index(model.row_of(bob.identity.id), CONNECTED)) == "no")
    assert window.peer_count.text() == "0 peers connected"
    assert reads == [], "a connection event re-read the whole peer list"


class Panel(QWidget):
    status = Signal(str)
    failed = Signal(str)


def test_run_action_disables_the_control_and_words_a_refusal(qtbot, run):
    panel, button, label = Panel(), QPushButton("Go"), QLabel()
    qtbot.addWidget(panel)
    said, seen_enabled, reasons = [], [], []
    panel.failed.connect(said.append)
    panel.status.connect(said.append)

    async def refused():
        seen_enabled.append(button.isEnabled())
        await asyncio.sleep(0)
        raise BadRequest("that is this node's own key")

    ok = run(run_action(panel, refused(), failure="Could not add x", busy=button,
                        on_error=reasons.append, error_label=label, success="never"))
    assert ok is False and seen_enabled == [False] and button.isEnabled()
    assert reasons == ["that is this node's own key"]
    assert said == ["Could not add x: that is this node's own key"] and label.text() == said[0]


def test_run_action_reports_success_and_unexpected_errors_in_words(qtbot, run):
    panel = Panel()
    qtbot.addWidget(panel)
    said, busy = [], []
    panel.failed.connect(said.append)
    panel.status.connect(said.append)

    async def works():
        return {"task": "t1"}

    assert run(run_action(panel, works(), failure="x", busy=busy.append, success=lambda v: f"started {v['task']}"))
    assert busy == [True, False] and said == ["started t1"]
    assert not run_action_now(panel, lambda: {}["missing"], failure="Could not set the tier")
    assert said[-1].startswith("Could not set the tier: unexpected error: KeyError")
    assert run_action_now(panel, lambda: None, failure="x", success="done") and said[-1] == "done"
