"""The Tasks tab: run a task on a peer, and the tasks this node sent and served with their proofs.

It redraws on the node's ``task_changed`` events (coalesced), and the peer list on connections;
it never polls. Every proof shown is verified again by the core when a row is selected.
"""
from __future__ import annotations

import json
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QGroupBox, QHeaderView, QLabel, QPlainTextEdit,
                               QScrollArea, QSplitter, QTableWidget, QVBoxLayout, QWidget)
from qasync import asyncSlot

from ..actions import run_action
from ..bridge import Refresh
from ..style import BAD, GOOD, MUTED, mono_font, named, table_item
from ..wording import gui_words, reworded
from .tasks_form import RunForm

COLUMNS = ("Task", "Role", "Type", "Peer", "State", "Proof", "CPU s", "Wall s", "Peak MB", "When")
# the command line's commands, as this tab does the same
COMMANDS = {r"`covey tasks show [^`]*`": "select it in the list below",
            r"`covey tasks list`": "the list below",
            r"`covey peers add [^`]*`": "Add peer on the Trust tab"}
FIELDS = {"timeout": "Timeout", "http": "over plain HTTP"}
STATE_COLOR = {"done": GOOD, "failed": BAD, "refused": BAD, "rejected": BAD, "sent": MUTED}


def in_tab_words(text: str) -> str:
    """A sentence of the core as this tab says it."""
    return gui_words(text, FIELDS, commands=COMMANDS)


def proof_text(view: dict) -> str:
    """The proof column: verified, not verified, or none yet."""
    if view["verified"]:
        return "verified ✓"
    return "rejected ✗" if view["state"] == "rejected" else "—"


def details_text(shown: dict) -> str:
    """What the details box shows for one task: outcome, verification, result, statement."""
    roles = shown.get("roles") or [shown]
    parts = []
    for view in roles:
        check = view["verification"]
        verdict = ("proof verified: signed by the executor, for this request, over this result"
                   if check["verified"] else f"proof NOT verified: {check['reason']}")
        parts.append(f"{view['role']} task {view['task']} ({view['type']}) — {view['state']}\n{verdict}\n"
                     f"executor {check['executor']}\nrequest digest {check['request_digest']}\n"
                     f"result sha256 {check['result_sha256'] or '—'}")
        if view.get("error"):
            parts.append(f"error: {in_tab_words(view['error'])}")
        if view.get("result") is not None:
            parts.append("result:\n" + json.dumps(view["result"], indent=1, sort_keys=True)[:4000])
        if view.get("proof") and view["proof"].get("statement"):
            parts.append("statement:\n" + json.dumps(view["proof"]["statement"], indent=1, sort_keys=True))
    return "\n\n".join(parts)


class TasksPanel(QWidget):
    """Renders the delegation service and turns clicks into its coroutines."""

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, node, delegation, parent=None):
        super().__init__(parent)
        self.node = node
        self.delegation = delegation
        self.rows: list[dict] = []
        self.form = RunForm(delegation.types())
        self.form.run_requested.connect(self.run_task)
        self.outcome = QLabel("Tasks you run appear below with their signed execution proof.")
        self.outcome.setObjectName("hint")
        self.outcome.setWordWrap(True)
        self.executor = QLabel()
        self.executor.setObjectName("caption")
        self.executor.setWordWrap(True)

        self.table = named(QTableWidget(0, len(COLUMNS)), "Tasks sent and served",
                           "Tasks this node sent and served; select one to check its proof again")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self.show_selected)
        self.details = named(QPlainTextEdit(), "Task details", "The selected task's outcome, proof and result")
        self.details.setReadOnly(True)
        self.details.setFont(mono_font())
        self.details.setPlaceholderText("Select a task to see its proof, checked again now.")

        listing = QGroupBox("Tasks sent and served")
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        self.table.setMinimumHeight(90)
        self.details.setMinimumHeight(60)
        QVBoxLayout(listing).addWidget(split)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.form)
        layout.addWidget(self.outcome)
        layout.addWidget(listing, 1)
        layout.addWidget(self.executor)
        # a task type with many fields makes the form tall: small screens scroll rather than squeeze
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.scroll = scroll

        self.redraw = Refresh(self.refresh, self)
        self.peers_redraw = Refresh(self.refresh_peers, self)
        self.refresh_peers()
        self.refresh()

    # -- events (through the window's bridge) ------------------------------------------
    def on_event_task_changed(self, event) -> None:
        self.redraw.request()

    def on_event_peer_connected(self, event) -> None:
        self.peers_redraw.request()

    def on_event_peer_disconnected(self, event) -> None:
        self.peers_redraw.request()

    def on_event_tier_changed(self, event) -> None:
        self.peers_redraw.request()

    # -- views ---------------------------------------------------------------------------
    def refresh_peers(self) -> None:
        self.form.set_peers([p for p in self.node.list_peers() if p["connected"]])

    def refresh(self) -> None:
        selected = self.selected_task()
        self.rows = self.delegation.list()
        self.table.setRowCount(len(self.rows))
        for r, view in enumerate(self.rows):
            cost = view["cost"] or {}
            cells = (table_item(view["task"][:12], tip=view["task"]), table_item(view["role"]), table_item(view["type"]),
                     table_item(view["peer_name"], tip=view["peer"]),
                     table_item(view["state"], STATE_COLOR.get(view["state"]), in_tab_words(view["error"] or "")),
                     table_item(proof_text(view), GOOD if view["verified"] else MUTED),
                     table_item(_num(cost.get("cpu_seconds"))), table_item(_num(cost.get("wall_seconds"))),
                     table_item(_num(cost.get("peak_rss_mb"), 1)), table_item(_when(view["created"])))
            for c, cell in enumerate(cells):
                self.table.setItem(r, c, cell)
            if view["task"] == selected:
                self.table.selectRow(r)
        s = self.delegation.status()
        self.executor.setText(f"This node runs tasks for CORE peers: {s['running']} running, {s['queued']} "
                              f"queued (at most {s['max_running']} at once, {s['max_queued']} waiting); "
                              f"datasets {', '.join(s['datasets']) or 'none'}.")

    def selected_task(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()]["task"] if rows and rows[0].row() < len(self.rows) else None

    def show_selected(self) -> None:
        task = self.selected_task()
        if task is None:
            self.details.clear()
            return
        self.details.setPlainText(details_text(self.delegation.show(task)))

    # -- actions ---------------------------------------------------------------------------
    @asyncSlot(str, str, dict, dict, float, bool)
    async def run_task(self, peer: str, kind: str, args: dict, files: dict, timeout: float, http: bool):
        self.outcome.setText(f"Running {kind} on {self._name(peer)}…")
        call = self.delegation.run(peer, kind, args, files=files, timeout=timeout, http=http)
        await run_action(self, reworded(call, in_tab_words),
                         failure=f"The {kind} task was not done", busy=self.form.run_button,
                         on_error=lambda reason: self.outcome.setText(f"{kind} on {self._name(peer)}: {reason}"),
                         error_label=self.form.error, success=self._done)

    def _done(self, view: dict) -> str:
        result = json.dumps(view["result"], sort_keys=True)
        self.outcome.setText(f"{view['type']} on {view['peer_name']}: {view['state']}, proof verified ✓ — "
                             f"{result[:300]}{'…' if len(result) > 300 else ''}")
        return f"Task {view['task'][:8]} done; its proof is verified"

    def _name(self, peer_id: str) -> str:
        index = self.form.peer.findData(peer_id)
        return self.form.peer.itemText(index).split("  ·  ")[0] if index >= 0 else peer_id[:12]


def _num(value, digits: int = 3) -> str:
    """A cost figure; a zero peak memory means "not measured" (echo runs inside the node)."""
    if value is None or (digits == 1 and value == 0):
        return "—"
    return f"<{10 ** -digits:g}" if 0 < value < 10 ** -digits else f"{value:.{digits}f}"


def _when(ts: float | None) -> str:
    return "—" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))
