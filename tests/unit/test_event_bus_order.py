"""The event bus calls exactly the listeners an event names, in the order they subscribed."""
from __future__ import annotations

from core.events import EventBus


def test_named_and_catch_all_listeners_run_in_subscription_order_and_only_for_their_event():
    bus = EventBus()
    calls: list[str] = []
    bus.on("a", lambda e: calls.append("a1"))
    bus.on(None, lambda e: calls.append("all"))
    remove = bus.on("a", lambda e: calls.append("a2"))
    bus.on("b", lambda e: calls.append("b"))
    bus.emit("a")
    assert calls == ["a1", "all", "a2"]
    calls.clear()
    remove()
    remove()  # a second remove is harmless
    bus.emit("a")
    bus.emit("c")
    assert calls == ["a1", "all", "all"]


def test_a_listener_that_unsubscribes_while_called_does_not_skip_the_next():
    bus = EventBus()
    calls: list[str] = []
    removers = []
    removers.append(bus.on("x", lambda e: (calls.append("first"), removers[0]())))
    bus.on("x", lambda e: calls.append("second"))
    bus.emit("x")
    bus.emit("x")
    assert calls == ["first", "second", "second"]
