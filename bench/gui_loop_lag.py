"""Event-loop lag of the desktop app while a training round runs and chat messages arrive.

This process is the app: a real node with its MainWindow (offscreen, the Chat tab in front) on
the qasync loop. Around it, real nodes on 127.0.0.1 in their own processes (`covey --headless`):
two workers (auto-join) and a chat peer that sends a message every ``--interval`` seconds
through its control API (as `covey chat send` does).

Lag: a probe awaits ``asyncio.sleep(0.01)`` over and over; lag = how much later than asked it
wakes (so a redraw, an event burst or a slow handler on the loop shows up in it).

    floor   the same probe, same window, same peers connected, nothing happening
    load    the app's node coordinates a task (as Start in the Training tab does: digits, MLP,
            both workers) while the chat peer sends; the probe runs until the task is done
            (at most ``--seconds``)
    worker  the same with roles swapped: a headless node coordinates and the app's node trains
            as a worker (torch in a worker thread of this process)

Usage: QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD python bench/gui_loop_lag.py [--rounds 5]
Target (issue 10): p99 lag < 50 ms under load.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_nodes import stop_processes  # bench/ is the script directory

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
TICK = 0.01
SENDER = r"""
import sys, time
from pathlib import Path
from core.app.client import call
home, peer, count, interval = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
for i in range(count):
    call(home, "chat.send", {"peer": peer, "text": f"message {i} from the bench"})
    time.sleep(interval)
"""


def start_headless(home: Path, env: dict) -> subprocess.Popen:
    from core.identity import Identity
    Identity.generate(home.name).save(home)
    proc = subprocess.Popen([sys.executable, "-m", "core.app.cli", "--home", str(home), "--headless",
                             "--listen", "127.0.0.1:0", "--log-level", "warning"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (home / "control.json").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"node in {home} did not start")
        time.sleep(0.1)
    return proc


async def call(home: Path, name: str, args: dict):
    from core.app.client import call as control_call
    return await asyncio.to_thread(control_call, home, name, args)


async def probe(stop: asyncio.Event, limit: float) -> list[float]:
    """Lag samples (ms) until ``stop`` is set or ``limit`` seconds passed."""
    lags = []
    deadline = time.perf_counter() + limit
    while not stop.is_set() and time.perf_counter() < deadline:
        asked = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append((time.perf_counter() - asked - TICK) * 1000)
    return lags


def summary(lags: list[float]) -> dict:
    ordered = sorted(lags)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"samples": len(lags), "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(pick(0.99), 2), "max_ms": round(ordered[-1], 2)}


async def wait_connected(node, ids: list[str], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not all(i in node.connections for i in ids):
        if time.monotonic() > deadline:
            raise RuntimeError("peers did not connect")
        await asyncio.sleep(0.05)


async def run_task(node, coordinator_home: Path | None, rounds: int, epochs: int, seconds: float,
                   sender_args: list[str], env: dict) -> dict:
    """Start a task (here, or on the headless coordinator), send chat, probe until it is done."""
    received = []
    off = node.events.on("chat_message", lambda e: received.append(1) if e.data.get("direction") == "in" else None)
    options = {"rounds": rounds, "min_clients": 2, "seed": 0, "epochs": epochs}
    if coordinator_home is None:
        task = (await node.service("learning").start_task(**options))["task"]

        def state():
            return node.service("learning").status(task)
    else:
        task = (await call(coordinator_home, "ml.start", options))["task"]
        last = {"state": "running"}

        async def poll():
            while last["state"] == "running":
                last.update(await call(coordinator_home, "ml.status", {"task": task}))
                await asyncio.sleep(0.5)
        poller = asyncio.ensure_future(poll())

        def state():
            return last
    sender = None
    if sender_args:   # --interval 0: no chat, the task alone
        sender = subprocess.Popen([sys.executable, "-c", SENDER, *sender_args], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = asyncio.Event()

    async def watch():
        while state()["state"] == "running":
            await asyncio.sleep(0.1)
        stop.set()
    watcher = asyncio.ensure_future(watch())
    started = time.perf_counter()
    lags = await probe(stop, seconds)
    elapsed = time.perf_counter() - started
    watcher.cancel()
    if coordinator_home is not None:
        poller.cancel()
    if sender is not None:
        sender.kill()
        sender.wait()
    off()
    final = state()
    return {**summary(lags), "seconds": round(elapsed, 1), "task_state": final["state"],
            "rounds_done": final.get("round"), "chat_messages_in": len(received),
            "accepted_per_round": [h.get("accepted") for h in final.get("history", [])]}


async def bench(args, app) -> dict:
    from core.config import Settings
    from core.identity import Identity
    from core.node import Node
    from desktop.window import MainWindow

    env = {**os.environ, "COVEY_DISCOVERY": "0", "COVEY_ML_AUTO_JOIN": "1", "PYTHONPATH": str(REPO)}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "app"
        Identity.generate("app").save(home)
        os.environ["COVEY_ML_AUTO_JOIN"] = "1"     # the app's node joins the worker-phase task
        node = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
        await node.start()
        window = MainWindow(node)
        window.show()
        chat_tab = next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "Chat")
        window.tabs.setCurrentIndex(chat_tab)
        address = f"127.0.0.1:{node.transport.port}"
        try:
            homes = {name: root / name for name in ("w0", "w1", "carol")}
            for h in homes.values():   # blocking start-up polls: off the loop
                procs.append(await asyncio.to_thread(start_headless, h, env))
            ids = {}
            for name, h in homes.items():
                await call(h, "peers.add", {"address": address})
                ids[name] = (await call(h, "id", {}))["id"]
                await call(h, "peers.trust", {"peer": node.identity.id,
                                              "tier": "external" if name == "carol" else "core"})
            await wait_connected(node, list(ids.values()))
            for name, peer_id in ids.items():
                node.trust(peer_id, "external" if name == "carol" else "core")
            # the workers know each other only through the app's node; for the worker phase w0
            # coordinates and needs w1 and the app as its workers
            w0_port = (await call(homes["w0"], "id", {}))["listen"][0].rsplit(":", 1)[1]
            await call(homes["w1"], "peers.add", {"address": f"127.0.0.1:{w0_port}"})
            await call(homes["w1"], "peers.trust", {"peer": ids["w0"], "tier": "core"})
            await call(homes["w0"], "peers.trust", {"peer": ids["w1"], "tier": "core"})
            await call(homes["w0"], "peers.trust", {"peer": node.identity.id, "tier": "core"})
            await asyncio.sleep(1.0)
            count = int(args.seconds / args.interval) + 1 if args.interval > 0 else 0
            sender_args = [str(homes["carol"]), node.identity.id, str(count), str(args.interval)] if count else []
            workers = [ids["w0"], ids["w1"]]
            floor = summary(await probe(asyncio.Event(), args.floor_seconds))
            await wait_connected(node, workers)
            load = await run_task(node, None, args.rounds, args.epochs, args.seconds, sender_args, env)
            await wait_connected(node, workers)
            worker = await run_task(node, homes["w0"], args.rounds, args.worker_epochs, args.seconds, sender_args, env)
        finally:
            window.quit()
            await node.stop()
            stop_processes(procs)
    worst = max(load["p99_ms"], worker["p99_ms"])
    return {"floor": floor, "load_coordinator": load, "load_worker": worker,
            "ratio_p99": round(worst / max(floor["p99_ms"], 0.01), 2),
            "torch_in_app_process": "torch" in sys.modules,
            "load_average": os.getloadavg()[0],
            "target_p99_ms": TARGET_MS, "holds": worst < TARGET_MS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="local epochs per round")
    parser.add_argument("--worker-epochs", type=int, default=40,
                        help="local epochs per round in the worker phase (so the app trains for seconds)")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest probe per phase")
    parser.add_argument("--floor-seconds", type=float, default=8.0)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between chat messages (0: none)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication
    from desktop.style import style_sheet
    app = QApplication(sys.argv[:1])
    app.setStyleSheet(style_sheet())
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        result = loop.run_until_complete(bench(args, app))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
