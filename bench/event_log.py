"""The Node tab's event log against a bare listener: what each core event costs the loop.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=. .venv/bin/python bench/event_log.py [--events 20000] [--rounds 3]

Floor: an EventBus with one listener that appends to a list. Measured: the same bus
with an ``EventLog`` subscribed (it queues each event; the table takes the queue once per
burst). Rounds alternate; medians of the per-event cost. ``flush_ms``: one burst of
MAX_EVENTS events added to the table and painted. Target: ``ratio`` (log / floor per event)
under 20, and ``flush_ms`` under 50 ms (one frame budget of issue 10).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from PySide6.QtWidgets import QApplication

from core.events import EventBus


def per_event_us(bus: EventBus, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        bus.emit("reputation_changed", peer="ab" * 32, reputation=i / n)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    app = QApplication([])
    from desktop.node.event_log import MAX_EVENTS, EventLog

    floor_bus, seen = EventBus(), []
    floor_bus.on(None, seen.append)
    log_bus = EventBus()
    log = EventLog(log_bus)
    log.resize(800, 400)
    log.show()
    app.processEvents()
    floors, logs, flushes = [], [], []
    for _ in range(args.rounds):
        seen.clear()
        floors.append(per_event_us(floor_bus, args.events))
        logs.append(per_event_us(log_bus, args.events))
        start = time.perf_counter()
        log.flush()
        app.processEvents()
        flushes.append((time.perf_counter() - start) * 1e3)
    floor, cost, flush = statistics.median(floors), statistics.median(logs), statistics.median(flushes)
    print(json.dumps({"events": args.events, "max_rows": MAX_EVENTS, "floor_us_per_event": round(floor, 2),
                      "log_us_per_event": round(cost, 2), "ratio": round(cost / floor, 2),
                      "flush_ms": round(flush, 1), "holds": cost / floor < 20 and flush < 50}))


if __name__ == "__main__":
    main()
