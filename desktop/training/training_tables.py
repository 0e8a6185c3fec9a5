"""Tables of the Training tab: the workers of the latest round, and this node's invitations."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..style import BAD, GOOD, MUTED, named, table_item

WORKER_COLUMNS = ("Peer", "Role", "Update norm", "Examples", "Train loss", "Status")
INVITE_COLUMNS = ("Task", "Coordinator", "Model", "Aggregator", "Rounds", "State", "Parameters")
REASONS = {   # the coordinator's rejection codes, as a person reads them
    "validation": "failed validation on the held-out set",
    "late": "arrived after the deadline",
    "wrong_round": "for another round",
    "duplicate": "a second update in one round",
    "replay": "replayed an old update",
    "stale": "timestamp outside the allowed skew",
    "bad_signature": "bad signature",
    "not_participant": "not a participant",
    "not_allowed": "not allowed by its trust tier",
    "malformed": "malformed update",
    "too_large": "update too large",
    "shape": "wrong tensor shapes",
    "dtype": "wrong tensor dtype",
    "non_finite": "NaN or infinite values",
}


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    for col in range(len(columns)):
        header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def worker_status(entry: dict) -> tuple[str, QColor]:
    """What happened to one worker's update, in words, and its colour."""
    status = entry.get("status")
    if status == "accepted":
        if entry.get("used") is False:
            return "accepted, not selected by the aggregator", MUTED
        return "accepted", GOOD
    if status == "outlier":
        return "rejected: far from the robust aggregate (outlier)", BAD
    if status == "rejected":
        reason = str(entry.get("reason") or "rejected")
        return f"rejected: {REASONS.get(reason, reason.replace('_', ' '))}", BAD
    if status == "missing":
        return "no update before the deadline", MUTED
    if status == "absent":
        reason = str(entry.get("reason") or "not in this round")
        return reason, BAD if reason.startswith("banned") else MUTED
    return str(status or "?"), MUTED


def _number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


class WorkersTable(QWidget):
    """One row per worker of the latest round: name, role, update norm and what became of it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = "Workers"
        self.table = named(_table(WORKER_COLUMNS), "Workers of the latest round",
                           "Each worker of the latest round: its update's norm, examples, loss, and whether "
                           "the update was kept (hover a name for the peer's id)")
        self.table.setMinimumHeight(110)
        self.empty = QLabel("No round finished yet.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)

    def show_round(self, record: dict | None, name_of, spec: dict | None) -> None:
        """Fill the table from a round record; ``name_of(peer_id)`` gives a display name."""
        workers = (record or {}).get("workers") or {}
        spec = spec or {}
        self.title = f"Workers in round {record['round']}" if record else "Workers"
        self.table.setRowCount(len(workers))
        attack, attackers = spec.get("attack"), spec.get("attackers") or 0
        rows = sorted(workers.items(), key=lambda kv: (kv[1].get("slot") is None, kv[1].get("slot") or 0, kv[0]))
        for row, (peer, entry) in enumerate(rows):
            slot = entry.get("slot")
            attacker = attack is not None and slot is not None and slot < attackers
            text, color = worker_status(entry)
            cells = (
                table_item(name_of(peer), tip=peer),
                table_item(f"attacker: {attack.replace('_', ' ')}" if attacker else "honest",
                      BAD if attacker else None, "a simulated attacker (this task's attack simulation)"
                      if attacker else ""),
                table_item(_number(entry.get("norm"), 3)),
                table_item("—" if entry.get("n_examples") is None else str(entry["n_examples"])),
                table_item(_number(entry.get("train_loss"), 4)),
                table_item(text, color),
            )
            for col, cell in enumerate(cells):
                self.table.setItem(row, col, cell)
        self.empty.setVisible(not workers)

    def rows(self) -> list[dict[str, str]]:
        """The table as text, column name -> cell (what a user reads)."""
        return [{WORKER_COLUMNS[c]: self.table.item(r, c).text() for c in range(len(WORKER_COLUMNS))}
                for r in range(self.table.rowCount())]


class InvitationsBox(QWidget):
    """Tasks other nodes invited this node to work on, a Join button and the auto-join switch."""

    join_requested = Signal(str)
    auto_join_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = named(_table(INVITE_COLUMNS), "Training invitations",
                           "Tasks other nodes invited this node to work on; select one and press Join")
        self.table.setMinimumHeight(90)
        self.table.itemSelectionChanged.connect(self._update_join)
        self.join_button = named(QPushButton("Join"), "Join the selected task",
                                 "Work on the selected task: train on this node's share each round")
        self.join_button.setObjectName("primary")
        self.join_button.clicked.connect(self._join_clicked)
        self.auto_join = named(QCheckBox("Auto-join from trusted peers"), "Auto-join from trusted peers",
                               "Join invitations from CORE and SANDBOX peers without asking")
        self.auto_join.toggled.connect(self.auto_join_changed)
        self.empty = QLabel("No invitations. A CORE or SANDBOX peer that starts a task invites this node.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.auto_join)
        bar.addStretch(1)
        bar.addWidget(self.join_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        self._tasks: list[str] = []
        self._states: dict[str, str] = {}
        self._over_budget: set[str] = set()
        self._update_join()

    def set_auto_join(self, on: bool) -> None:
        self.auto_join.blockSignals(True)
        self.auto_join.setChecked(on)
        self.auto_join.blockSignals(False)

    def show_members(self, members: list, name_of, view_of) -> None:
        """Fill from the worker's memberships (newest last), keeping the selection.

        ``view_of(m)`` is the worker's view of a membership: the model's parameter count
        against this node's budget (an invitation over the budget cannot be joined)."""
        selected = self.selected_task()
        self._tasks = [m.task for m in members]
        self._states = {m.task: m.state for m in members}
        self._over_budget = set()
        self.table.setRowCount(len(members))
        for row, m in enumerate(members):
            spec = m.spec or {}
            state = m.state   # invited | joined | left (rounds are reported by the coordinator)
            color = GOOD if m.state == "joined" else (MUTED if m.state == "left" else None)
            cells = (table_item(m.task, tip=m.task), table_item(name_of(m.coordinator), tip=m.coordinator),
                     table_item(str(spec.get("model", "?"))), table_item(str(spec.get("aggregator", "?"))),
                     table_item(str(spec.get("rounds", "?"))), table_item(state, color),
                     self._sizetable_item(m, view_of(m)))
            for col, cell in enumerate(cells):
                self.table.setItem(row, col, cell)
        self.empty.setVisible(not members)
        if selected in self._tasks:
            self.select_task(selected)
        elif self._tasks and not self.table.selectedItems():
            invited = [t for t in self._tasks if self._states[t] == "invited"]
            if invited:
                self.select_task(invited[-1])
        self._update_join()

    def _sizetable_item(self, m, view: dict) -> QTableWidgetItem:
        params, budget = view.get("params"), view.get("max_params")
        if params is None:
            return table_item("?", tip="the invitation does not describe a model this node knows")
        if view.get("within_budget"):
            return table_item(f"{params:,}", tip=f"within this node's budget of {budget:,} parameters")
        self._over_budget.add(m.task)
        return table_item(f"{params:,}", BAD, tip=f"larger than this node's budget of {budget:,} "
                                             "parameters: this invitation cannot be joined")

    def select_task(self, task: str) -> None:
        if task in self._tasks:
            self.table.selectRow(self._tasks.index(task))

    def selected_task(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._tasks[rows[0].row()] if rows and rows[0].row() < len(self._tasks) else None

    def pending(self) -> int:
        """Invitations not joined yet."""
        return sum(1 for state in self._states.values() if state == "invited")

    def state_of(self, task: str) -> str | None:
        return self._states.get(task)

    def _update_join(self) -> None:
        task = self.selected_task()
        self.join_button.setEnabled(task is not None and self._states.get(task) == "invited"
                                    and task not in self._over_budget)

    def _join_clicked(self) -> None:
        task = self.selected_task()
        if task is not None:
            self.join_button.setEnabled(False)
            self.join_requested.emit(task)
