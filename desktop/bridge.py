"""Core events into Qt, Electrum-style.

The node's :class:`core.events.EventBus` calls :class:`EventBridge`, which
re-emits every event as a Qt signal; each registered widget receives it in
its ``on_event_<name>`` method (if it has one). With qasync the asyncio loop
and the Qt loop are the same thread, so no queuing is needed: the bridge only
decouples widgets from the bus and drops widgets that were destroyed.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from core.events import Event, EventBus

log = logging.getLogger("covey.desktop.bridge")


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
        """Stop listening to the bus (the node may outlive the window in tests)."""
        self._unsubscribe()
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
