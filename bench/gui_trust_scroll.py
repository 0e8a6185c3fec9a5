"""Scrolling the Trust tab's peer table with 1,000 peers, against a bare QTableView.

A real node (127.0.0.1, no discovery) whose peer book holds ``--peers`` peers (mixed
tiers, bans, reputations, addresses, last-seen times), its Trust panel offscreen at
900x600, and the table scrolled programmatically down and back up ``--step`` rows per
frame. A frame is ``setValue`` on the scroll bar plus a synchronous ``repaint()`` of the
viewport: everything the view does to show the new rows. The floor, in the same run and
the same process: a bare ``QTableView`` of the same size, rows and columns over a trivial
model (precomputed strings, DisplayRole only). Rounds alternate panel / floor.

Also measured: ``filtered_frame_ms``, one round with a filter every row matches (the
view then reads through the filter proxy); ``update_ms``, the time to apply one peer event (a reputation change) to
the panel, p50/p99 over ``--updates`` events (incremental: one row changes).

    QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD .venv/bin/python bench/gui_trust_scroll.py

Prints JSON; ``holds`` is p99 frame < 50 ms (issue 10).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_P99_MS = 50.0
TIERS = ("core", "sandbox", "external", "unknown")


def fill_book(node, count: int, rng: random.Random) -> None:
    """``count`` peers in the node's real peer book (SQLite), as a long-used node holds them."""
    book = node.peers
    for i in range(count):
        peer_id = rng.randbytes(32).hex()
        book.add_or_update(peer_id, name=f"peer-{i:04d}", address=f"10.{i // 250}.{i % 250}.7:8102",
                           source="manual", pinned=True, kept=True, mode="asymmetric")
        tier = TIERS[i % 4]
        if tier != "unknown":
            book.set_tier(peer_id, tier)
        if i % 17 == 0:
            book.ban(peer_id)
        if i % 5 == 0:
            book.seen(peer_id)


def frames(view, step: int) -> list[float]:
    """Scroll ``view`` to the bottom and back, ``step`` rows per frame; ms per frame."""
    from PySide6.QtWidgets import QApplication
    bar = view.verticalScrollBar()
    row = max(1, view.rowHeight(0))
    # per-item scrolling (QTableView's default): the bar counts rows
    per_frame = step if view.verticalScrollMode() == view.ScrollMode.ScrollPerItem else step * row
    values = list(range(0, bar.maximum() + 1, per_frame))
    values += values[::-1]
    out = []
    bar.setValue(0)
    QApplication.processEvents()
    for value in values:
        t0 = time.perf_counter()
        bar.setValue(value)
        view.viewport().repaint()
        out.append((time.perf_counter() - t0) * 1000)
        QApplication.processEvents()   # what the loop does between frames (not timed)
    return out


def floor_view(rows: int, cols: int, size):
    """A bare QTableView over a trivial model of the same shape."""
    from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
    from PySide6.QtWidgets import QTableView

    display = int(Qt.DisplayRole)   # as the panel's model does: no enum lookup per call

    class Trivial(QAbstractTableModel):
        def __init__(self):
            super().__init__()
            self.cells = [[f"r{r}c{c}" for c in range(cols)] for r in range(rows)]

        def rowCount(self, parent=QModelIndex()):
            return 0 if parent.isValid() else rows

        def columnCount(self, parent=QModelIndex()):
            return 0 if parent.isValid() else cols

        def data(self, index, role=Qt.DisplayRole):
            return self.cells[index.row()][index.column()] if role == display else None

    view = QTableView()
    model = Trivial()
    view.setModel(model)
    view.model_ref = model
    view.resize(size)
    view.show()
    return view


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--step", type=int, default=3, help="rows per frame (a mouse-wheel notch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()

    import qasync
    from PySide6.QtWidgets import QApplication

    from core import events as ev
    from core.config import Settings
    from core.identity import Identity
    from core.node import Node
    from desktop.peers.peers_panel import PeersPanel
    from desktop.style import style_sheet

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyleSheet(style_sheet())
    loop = qasync.QEventLoop(app)
    executor = qasync.QThreadExecutor(1)   # owned here so its thread ends before Qt does
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    home = Path(tempfile.mkdtemp(prefix="covey-bench-")) / "alice"
    Identity.generate("alice").save(home)
    node = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    loop.run_until_complete(node.start())
    rng = random.Random(7)
    try:
        fill_book(node, args.peers, rng)
        t0 = time.perf_counter()
        panel = PeersPanel(node)
        build_ms = (time.perf_counter() - t0) * 1000
        panel.resize(900, 600)
        panel.show()
        app.processEvents()
        table = panel.table
        rows, cols = table.model().rowCount(), table.model().columnCount()
        floor = floor_view(rows, cols, table.size())
        app.processEvents()
        panel_frames: list[float] = []
        floor_frames: list[float] = []
        for _ in range(args.rounds):
            panel_frames += frames(table, args.step)
            floor_frames += frames(floor, args.step)

        # the same through the filter proxy: a filter that every row matches
        panel.filter.setText("peer-")
        app.processEvents()
        filtered_frames = frames(table, args.step)
        panel.filter.clear()
        app.processEvents()

        # one peer event at a time, as the bridge delivers them
        ids = [p["id"] for p in node.list_peers()]
        update_ms = []
        for i in range(args.updates):
            event = ev.Event(ev.REPUTATION_CHANGED, {"peer": ids[i % len(ids)], "reputation": rng.random()})
            t0 = time.perf_counter()
            panel.on_event_reputation_changed(event)
            update_ms.append((time.perf_counter() - t0) * 1000)
            app.processEvents()
    finally:
        loop.run_until_complete(node.stop())
        executor.shutdown(wait=True)

    p50, p99 = pct(panel_frames, 0.5), pct(panel_frames, 0.99)
    f50, f99 = pct(floor_frames, 0.5), pct(floor_frames, 0.99)
    return {"peers": rows, "columns": cols, "frames": len(panel_frames), "step_rows": args.step,
            "panel_frame_ms": {"p50": p50, "p99": p99, "max": round(max(panel_frames), 3),
                               "mean": round(statistics.fmean(panel_frames), 3)},
            "floor_frame_ms": {"p50": f50, "p99": f99, "max": round(max(floor_frames), 3)},
            "ratio_p50": round(p50 / f50, 2) if f50 else None,
            "ratio_p99": round(p99 / f99, 2) if f99 else None,
            "filtered_frame_ms": {"p50": pct(filtered_frames, 0.5), "p99": pct(filtered_frames, 0.99)},
            "build_panel_ms": round(build_ms, 1),
            "update_ms": {"p50": pct(update_ms, 0.5), "p99": pct(update_ms, 0.99)},
            "target_p99_ms": TARGET_P99_MS, "holds": p99 < TARGET_P99_MS}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
