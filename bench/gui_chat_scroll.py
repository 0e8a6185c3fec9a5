"""Scrolling a 10,000-message conversation in the real Chat tab, against a bare list view (JSON).

    PYTHONPATH=. QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_chat_scroll.py [--messages 10000]
        [--frames 400] [--rounds 3]

A real node (127.0.0.1, no peers) and its real :class:`ChatPanel`, 900x600,
offscreen. ``--messages`` message views (1 to 7 lines of text, a third of
them ours with ticks, a tenth with a disappearing timer, a few file rows)
go into the panel's message model, as opening a conversation does. Then the
list is scrolled programmatically; one *frame* is: move the scroll bar, let
Qt handle what that posts, and repaint the viewport synchronously.

- ``wheel``: 120 px per frame (a mouse wheel notch is three lines), from
  the middle of the conversation down.
- ``jump``: the whole conversation top to bottom in ``--frames`` frames
  (every frame shows rows never painted before: the worst case for caches).
- ``opening``: the wheel from the top for 30 frames right after the model
  got the views (the view lays rows out in batches meanwhile).
- ``open_s``: from handing the model the views until the list is laid out
  (the scroll range stayed put for 1 s, which is included) and painted.

Floor: a bare ``QListView`` over a ``QStringListModel`` of the same count of
one-line strings, uniform item sizes, same size, same scroll pattern, in the
same run. Rounds alternate (floor, chat, ...); frame times are pooled. Each
frame's CPU time (this thread's) is reported beside its wall time: on a
shared machine the wall time also holds the waits for a core.
Target (issue 10): chat ``p99_ms`` < 50 in both patterns; ``ratio`` is chat p99 /
floor p99 (how much the bubbles, wrapping and ticks cost over the cheapest list).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qasync  # noqa: E402
from PySide6.QtCore import QStringListModel  # noqa: E402
from PySide6.QtWidgets import QApplication, QListView  # noqa: E402

from core.config import Settings  # noqa: E402
from core.identity import Identity  # noqa: E402
from core.node import Node  # noqa: E402
from desktop.chat.chat_panel import ChatPanel  # noqa: E402
from desktop.chat.messages_model import Row  # noqa: E402
from desktop.style import style_sheet  # noqa: E402

WIDTH, HEIGHT = 900, 600
WHEEL_PX = 120
STABLE_S = 1.0           # a layout is done when the scroll range stays put this long
OPENING_FRAMES = 30
TARGET_P99_MS = 50.0
WORDS = ("the weights from round twelve are in and the accuracy went up again, "
         "see the chart on the training tab before we start the next round").split()


def views(count: int, author: str, me: str) -> list[dict]:
    now = time.time()
    out = []
    for i in range(1, count + 1):
        n = 3 + (i * 7919) % 40                       # 3 to 42 words: one to several wrapped lines
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))
        if i % 13 == 0:
            text += "\nand a second paragraph"
        ours = i % 3 == 0
        expires = (datetime.fromtimestamp(now + 3600, timezone.utc).isoformat() if i % 10 == 0 else None)
        out.append({"id": i, "from": me if ours else author, "text": text,
                    "sent_at": datetime.fromtimestamp(now - (count - i) * 7, timezone.utc).isoformat(),
                    "state": ("read" if i % 2 else "delivered") if ours else "received", "outgoing": ours,
                    "expires_at": expires})
    return out


def settle(app: QApplication, view: QListView) -> None:
    """Let a batched layout finish: the scroll range has not changed for ``STABLE_S``."""
    bar = view.verticalScrollBar()
    last, since = -1, time.perf_counter()
    deadline = since + 120
    while time.perf_counter() < deadline:
        app.processEvents()
        now = time.perf_counter()
        if bar.maximum() != last:
            last, since = bar.maximum(), now
        elif now - since >= STABLE_S:
            return
        time.sleep(0.001)


def frames(app: QApplication, view: QListView, positions: list[int]) -> list[tuple[float, float]]:
    """Frame times (wall ms, this thread's CPU ms): move the bar, handle what that posts, repaint now."""
    bar, port = view.verticalScrollBar(), view.viewport()
    out = []
    for value in positions:
        start, cpu = time.perf_counter(), time.thread_time()
        bar.setValue(value)
        app.processEvents()
        port.repaint()
        out.append(((time.perf_counter() - start) * 1000, (time.thread_time() - cpu) * 1000))
    return out


def patterns(view: QListView, count: int) -> dict[str, list[int]]:
    top = view.verticalScrollBar().maximum()
    start = top // 2
    wheel = [min(top, start + WHEEL_PX * k) for k in range(1, count + 1)]
    jump = [top * k // count for k in range(1, count + 1)]
    return {"wheel": wheel, "jump": jump}


def chat_round(app, panel: ChatPanel, data: list[dict], count: int) -> tuple[float, dict[str, list]]:
    view = panel.conversation.list
    panel.model.clear()
    app.processEvents()
    start = time.perf_counter()
    rows = [Row.from_view(v) for v in data]
    for k, place in enumerate((len(data) // 4, len(data) // 2, 3 * len(data) // 4)):   # a few file cards
        rows.append(Row.for_file(place, 1, {
            "id": f"{k:032x}", "peer": data[0]["from"], "direction": "in" if k % 2 else "out",
            "name": f"results-{k}.csv", "size": 123456, "type": "text/csv", "state": "transferring",
            "done": 50000, "total": 123456, "chunks": 1, "path": None, "error": None}))
    rows.sort(key=lambda r: r.key)
    panel.model.set_rows(rows)
    app.processEvents()
    opening = frames(app, view, [WHEEL_PX * k for k in range(1, OPENING_FRAMES + 1)])
    settle(app, view)
    view.scrollToTop()
    view.viewport().repaint()
    opened = time.perf_counter() - start
    measured = {name: frames(app, view, pos) for name, pos in patterns(view, count).items()}
    return opened, {"opening": opening, **measured}


def floor_round(app, view: QListView, count: int) -> dict[str, list]:
    settle(app, view)
    view.scrollToTop()
    view.viewport().repaint()
    return {name: frames(app, view, pos) for name, pos in patterns(view, count).items()}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [s[0] for s in samples], [s[1] for s in samples]
    return {"p50_ms": round(statistics.median(wall), 3), "p99_ms": round(pct(wall, 0.99), 3),
            "max_ms": round(max(wall), 3), "cpu_p50_ms": round(statistics.median(cpu), 3),
            "cpu_p99_ms": round(pct(cpu, 0.99), 3), "frames": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(style_sheet())
    loop = qasync.QEventLoop(app)
    executor = qasync.QThreadExecutor(2)      # owned here, so its threads end before the process
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "bench"
        identity = Identity.generate("bench")
        identity.save(home)
        node = Node(home, identity, Settings(listen="127.0.0.1:0", discovery=False))
        loop.run_until_complete(node.start())
        try:
            result = run(app, node, args)
        finally:
            loop.run_until_complete(node.stop())
            executor.shutdown(wait=True)
    print(json.dumps(result, indent=2))


def run(app, node: Node, args) -> dict:
    panel = ChatPanel(node, node.service("chat"))
    panel.resize(WIDTH, HEIGHT)
    panel.show()
    author = "ab" * 32
    panel.conversation.open("bench")
    data = views(args.messages, author, node.identity.id)

    floor = QListView()
    floor.setUniformItemSizes(True)
    floor.setModel(QStringListModel([f"message {i}" for i in range(args.messages)]))
    floor.resize(panel.conversation.list.viewport().size())
    floor.show()

    pooled: dict[str, dict[str, list[tuple[float, float]]]] = {"chat": {}, "floor": {}}
    opened = []
    for _ in range(args.rounds):
        for name, times in floor_round(app, floor, args.frames).items():
            pooled["floor"].setdefault(name, []).extend(times)
        seconds, chat = chat_round(app, panel, data, args.frames)
        opened.append(seconds)
        for name, times in chat.items():
            pooled["chat"].setdefault(name, []).extend(times)
    out: dict = {"messages": args.messages, "frames_per_round": args.frames, "rounds": args.rounds,
                 "viewport": [panel.conversation.list.viewport().width(),
                              panel.conversation.list.viewport().height()],
                 "open_s": round(statistics.median(opened), 3), "patterns": {}}
    out["opening"] = summary(pooled["chat"]["opening"])
    out["opening"]["holds"] = out["opening"]["p99_ms"] < TARGET_P99_MS
    holds = out["opening"]["holds"]
    for name in ("wheel", "jump"):
        chat, floor_s = summary(pooled["chat"][name]), summary(pooled["floor"][name])
        ok = chat["p99_ms"] < TARGET_P99_MS
        holds = holds and ok
        out["patterns"][name] = {"chat": chat, "floor": floor_s,
                                 "ratio_p99": round(chat["p99_ms"] / max(floor_s["p99_ms"], 1e-6), 2),
                                 "ratio_cpu_p99": round(chat["cpu_p99_ms"] / max(floor_s["cpu_p99_ms"], 1e-6), 2),
                                 "holds": ok}
    out["target_p99_ms"] = TARGET_P99_MS
    out["all_hold"] = holds
    return out


if __name__ == "__main__":
    main()
