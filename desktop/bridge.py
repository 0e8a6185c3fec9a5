"""Core events into Qt, Electrum-style.

The node's :class:`core.events.EventBus` calls :class:`EventBridge`, which
re-emits every event as a Qt signal; each registered widget receives it in
its ``on_event_<name>`` method (if it has one). With qasync the asyncio loop
and the Qt loop are the same thread, so no queuing is needed: the bridge only
decouples widgets from the bus and drops widgets that were destroyed.

Bursts (fifty peers connecting at start-up, a reputation change per worker
each round) reach every handler, but a handler that redraws a whole view asks
a :class:`Refresh` instead of redrawing: the view is redrawn once, shortly
after the first event of the burst (Electrum's ``need_update`` flag, with a
single-shot timer instead of a polling one). Handlers whose event payload
says what changed update just that (one row, one name) and need neither.
"""
from __future__ import annotations

import logging

from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from core.events import Event, EventBus

log = logging.getLogger("covey.desktop.bridge")
COALESCE_MS = 100   # a burst of events within this window costs one redraw


class Refresh(QObject):
    """Runs ``redraw()`` once per burst of :meth:`request` calls; a child of the widget it redraws."""

    def __init__(self, redraw: Callable[[], None], parent: QObject, delay_ms: int = COALESCE_MS):
        super().__init__(parent)
        self._redraw = redraw
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._fire)

    def request(self, *_) -> None:
        """Ask for a redraw; the first request of a burst starts the timer, the rest join it."""
        if not self._timer.isActive():
            self._timer.start()

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def cancel(self) -> None:
        """Drop a pending redraw (the node is stopping: nothing may read it any more)."""
        self._timer.stop()

    def _fire(self) -> None:
        try:
            self._redraw()
        except Exception:  # as in dispatch: a broken view must not take the window down
            log.exception("redraw of %s failed", type(self.parent()).__name__)


class EventBridge(QObject):
    """Re-emits each core event as ``event(Event)`` and dispatches it to registered widgets."""

    event = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None):
        super().__init__(parent)
        self._listeners: list[QObject] = []
        self._unsubscribe = bus.on(None, self.event.emit)
        self.event.connect(self._dispatch)

    def register(self, widget: QObject) -> None:
        """Deliver events to ``widget.on_event_<name>`` until the widget is destroyed."""
        self._listeners.append(widget)
        widget.destroyed.connect(lambda *_: self._forget(widget))

    def close(self) -> None:
        """Stop listening to the bus and drop pending redraws (the node may outlive the window in tests)."""
        self._unsubscribe()
        for widget in self._listeners:
            for refresh in widget.findChildren(Refresh):
                refresh.cancel()
        self._listeners.clear()

    def _forget(self, widget: QObject) -> None:
        if widget in self._listeners:
            self._listeners.remove(widget)

    def _dispatch(self, event: Event) -> None:
        for widget in list(self._listeners):
            handler = getattr(widget, f"on_event_{event.name}", None)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception:  # one broken widget must not starve the others
                log.exception("%s failed to handle %s", type(widget).__name__, event.name)
