"""The node's recent events: the last MAX_EVENTS, filtered by kind and by text."""
from __future__ import annotations

import re
import time

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLineEdit,
                               QTableWidget, QVBoxLayout)

import core.events as ev
from core.events import Event

from ..style import named, table_item

MAX_EVENTS = 500      # rows kept; the oldest goes first
MAX_DETAILS = 200     # characters of an event's data shown in its row
ALL = ""              # the kind combo's "every kind" item
KINDS = sorted(v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str))
_LONG_HEX = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{20,}\b")   # ids and keys: their first 12 digits


def kind_label(name: str) -> str:
    return name.replace("_", " ")


def details(event: Event) -> str:
    """The event's data on one line, ids shortened, at most MAX_DETAILS characters."""
    parts = []
    for key, value in event.data.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
        parts.append(f"{key}: {value}")
    text = _LONG_HEX.sub(r"\1…", " · ".join(parts).replace("\n", " "))
    return text if len(text) <= MAX_DETAILS else text[:MAX_DETAILS - 1] + "…"


class _Feed(QObject):
    """Carries every event of the bus into the Qt thread (queued if one comes from a worker thread)."""
    arrived = Signal(object)


class EventLog(QGroupBox):
    """A bounded table of the node's events as they happen, with a kind menu and a text filter."""

    def __init__(self, bus: ev.EventBus, parent=None):
        super().__init__("Recent events", parent)
        self.filter = named(QLineEdit(), "Filter the events",
                            "Show only the events whose kind or details contain this text.")
        self.filter.setPlaceholderText("filter: a name, an id, a word")
        self.filter.setClearButtonEnabled(True)
        self.kind = named(QComboBox(), "Kind of event", "Show one kind of event, or every kind.")
        self.kind.addItem("All kinds", ALL)
        for name in KINDS:
            self.kind.addItem(kind_label(name), name)
        self.table = named(QTableWidget(0, 3), "Recent events",
                           f"What the node did lately, newest last (the last {MAX_EVENTS} events).")
        self.table.setHorizontalHeaderLabels(["Time", "Kind", "Details"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.setMinimumHeight(160)
        row = QHBoxLayout()
        row.addWidget(self.filter, 1)
        row.addWidget(self.kind)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self.filter.textChanged.connect(self.apply_filter)
        self.kind.currentIndexChanged.connect(self.apply_filter)
        self._feed = _Feed(self)
        self._feed.arrived.connect(self.add)
        unsubscribe = bus.on(None, self._feed.arrived.emit)
        self.destroyed.connect(lambda *_: unsubscribe())

    def add(self, event: Event) -> None:
        """Append one event (dropping the oldest beyond MAX_EVENTS), hidden if the filter excludes it."""
        if self.table.rowCount() >= MAX_EVENTS:
            self.table.removeRow(0)
        row = self.table.rowCount()
        self.table.insertRow(row)
        when = time.strftime("%H:%M:%S", time.localtime(event.at))
        text = details(event)
        self.table.setItem(row, 0, table_item(when, tip=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.at))))
        kind = table_item(kind_label(event.name))
        kind.setData(Qt.UserRole, event.name)   # the kind as the combo holds it
        self.table.setItem(row, 1, kind)
        self.table.setItem(row, 2, table_item(text, tip=text))
        hidden = not self._matches(row)
        self.table.setRowHidden(row, hidden)
        if not hidden:
            self.table.scrollToBottom()

    def apply_filter(self, *_) -> None:
        for row in range(self.table.rowCount()):
            self.table.setRowHidden(row, not self._matches(row))

    def _matches(self, row: int) -> bool:
        kind = self.kind.currentData()
        if kind and self.table.item(row, 1).data(Qt.UserRole) != kind:
            return False
        words = self.filter.text().strip().lower()
        return not words or any(words in self.table.item(row, c).text().lower() for c in (1, 2))

    def shown(self) -> list[tuple[str, str]]:
        """(kind, details) of the rows the filter lets through, oldest first."""
        return [(self.table.item(r, 1).data(Qt.UserRole), self.table.item(r, 2).text())
                for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]
