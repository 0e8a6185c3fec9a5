"""The node's recent events: the last MAX_EVENTS, filtered by kind and by text.

Events arrive in bursts (a training round, fifty peers connecting); they are queued and
added to the table together, once per burst (:class:`desktop.bridge.Refresh`), so the
log costs the event loop next to nothing per event.
"""
from __future__ import annotations

import re
import time
from collections import deque

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLineEdit,
                               QTableView, QVBoxLayout)

import core.events as ev
from core.events import Event

from ..bridge import Refresh
from ..style import named, plain_tip

MAX_EVENTS = 500      # rows kept; the oldest goes first
MAX_DETAILS = 200     # characters of an event's data shown in its row
ALL = ""              # the kind combo's "every kind" item
KINDS = sorted(v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str))
COLUMNS = ("Time", "Kind", "Details")
TIME, KIND, DETAILS = range(len(COLUMNS))
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


class EventRows(QAbstractTableModel):
    """The last MAX_EVENTS events as (time, kind, details, at) rows, oldest first."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[tuple[str, str, str, float]] = []

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        when, kind, text, at = self.rows[index.row()]
        if role == Qt.DisplayRole:
            return (when, kind_label(kind), text)[index.column()]
        if role == Qt.ToolTipRole:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if index.column() == TIME else plain_tip(text)
        if role == Qt.UserRole:
            return kind
        return None

    def extend(self, events: list[Event]) -> None:
        """Append ``events``, then drop the oldest rows beyond MAX_EVENTS."""
        events = events[-MAX_EVENTS:]
        if events:
            first = len(self.rows)
            self.beginInsertRows(QModelIndex(), first, first + len(events) - 1)
            self.rows += [(time.strftime("%H:%M:%S", time.localtime(e.at)), e.name, details(e), e.at)
                          for e in events]
            self.endInsertRows()
        extra = len(self.rows) - MAX_EVENTS
        if extra > 0:
            self.beginRemoveRows(QModelIndex(), 0, extra - 1)
            del self.rows[:extra]
            self.endRemoveRows()


class EventFilter(QSortFilterProxyModel):
    """Lets through the rows of one kind (or all) whose kind or details hold the words."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.kind, self.words = ALL, ""

    def set_filter(self, kind: str, words: str) -> None:
        self.beginFilterChange()
        self.kind, self.words = kind, words.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:
        _, kind, text, _ = self.sourceModel().rows[row]
        if self.kind and kind != self.kind:
            return False
        return not self.words or self.words in kind_label(kind) or self.words in text.lower()


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
        self.model = EventRows(self)
        self.shown_rows = EventFilter(self)
        self.shown_rows.setSourceModel(self.model)
        self.table = named(QTableView(), "Recent events",
                           f"What the node did lately, newest last (the last {MAX_EVENTS} events).")
        self.table.setModel(self.shown_rows)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        metrics = self.table.fontMetrics()
        header.setSectionResizeMode(QHeaderView.Interactive)   # fixed widths: no re-measuring per event
        header.resizeSection(TIME, metrics.horizontalAdvance("00:00:00") + 28)
        header.resizeSection(KIND, metrics.horizontalAdvance("knowledge rejected") + 28)
        header.setStretchLastSection(True)
        self.table.setMinimumHeight(160)
        row = QHBoxLayout()
        row.addWidget(self.filter, 1)
        row.addWidget(self.kind)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self.filter.textChanged.connect(self.apply_filter)
        self.kind.currentIndexChanged.connect(self.apply_filter)
        self._pending: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._flush = Refresh(self.flush, self)
        self._feed = _Feed(self)
        self._feed.arrived.connect(self.add)
        unsubscribe = bus.on(None, self._feed.arrived.emit)
        self.destroyed.connect(lambda *_: unsubscribe())

    def add(self, event: Event) -> None:
        """Queue one event; the table takes the queue once per burst."""
        self._pending.append(event)
        self._flush.request()

    def flush(self) -> None:
        """Add the queued events to the table now (the view stays at the bottom if it was there)."""
        bar = self.table.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum()
        events, self._pending = list(self._pending), deque(maxlen=MAX_EVENTS)
        self.model.extend(events)
        if at_bottom:
            self.table.scrollToBottom()

    def apply_filter(self, *_) -> None:
        self.shown_rows.set_filter(self.kind.currentData(), self.filter.text())

    def shown(self) -> list[tuple[str, str]]:
        """(kind, details) of the rows the filter lets through, oldest first."""
        model = self.shown_rows
        return [(model.index(r, KIND).data(Qt.UserRole), model.index(r, DETAILS).data())
                for r in range(model.rowCount())]
