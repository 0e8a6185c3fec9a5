"""File transfer in a chat conversation against the node's 4 MiB bulk throughput, same run (JSON).

    PYTHONPATH=. .venv/bin/python bench/chat_files.py [--mib 256] [--rounds 3] [--bulk 64]

Two real nodes on 127.0.0.1 in one process (one event loop; the file's
hashing, sealing and writing run in worker threads, as in the node):

- ``bulk_mib_s`` (the floor): ``--bulk`` messages of 4 MiB sent one way with
  ``node.send`` to a handler that counts them, until a request behind them
  is answered (all were read and handled).
- ``file_mib_s``: ``covey chat file send`` of a ``--mib`` MiB random file and
  ``accept`` on the other node, from accept until the receiver has verified
  every chunk hash and renamed the file (the offer's hashing is reported
  apart as ``offer_s``). Part and target files live in a temporary directory.

Rounds alternate (floor, file, floor, file, ...); medians are reported.
Target: ``ratio`` = file / bulk >= 0.5.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.node import Node  # noqa: E402
from local_nodes import pair  # noqa: E402  (bench/ is the script directory)

MiB = 1 << 20
BULK = 4 * MiB
TARGET = 0.5


async def bulk(a: Node, b: Node, count: int, received: list) -> float:
    body = {"d": os.urandom(BULK)}
    start = time.perf_counter()
    for _ in range(count):
        await a.send(b.identity.id, "bench.sink", body)
    reply = await a.request(b.identity.id, "bench.flush", {}, timeout=300)
    elapsed = time.perf_counter() - start
    assert reply["n"] >= count, reply
    received[0] = 0
    return count * BULK / MiB / elapsed


async def transfer(a: Node, b: Node, src: Path, out: Path) -> tuple[float, float]:
    files_a, files_b = a.service("chat").files, b.service("chat").files
    start = time.perf_counter()
    view = await files_a.send(b.identity.id, str(src))
    fid = bytes.fromhex(view["id"])
    while fid not in files_b.incoming:
        await asyncio.sleep(0.001)
    offer_s = time.perf_counter() - start
    done = asyncio.get_running_loop().create_future()

    def finished(event) -> None:
        if event.data["file"] == view["id"] and event.data["state"] in ("done", "failed", "cancelled") \
                and not done.done():
            done.set_result(event.data["state"])
    off = b.events.on("chat_file", finished)
    try:
        start = time.perf_counter()
        files_b.accept(view["id"], str(out))
        state = await asyncio.wait_for(done, 600)
        elapsed = time.perf_counter() - start
    finally:
        off()
    assert state == "done", state
    size = src.stat().st_size
    assert out.stat().st_size == size
    out.unlink()
    return size / MiB / elapsed, offer_s


async def main(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="covey-bench-files-") as tmp:
        root = Path(tmp)
        src = root / "payload.bin"
        with open(src, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(MiB))
        a, b = await pair(root)
        received = [0]

        def sink(peer, body) -> None:
            received[0] += 1
        b.on_message("bench.sink", sink)
        b.on_message("bench.flush", lambda peer, body: {"n": received[0]})
        try:
            await a.service("chat").send("b", "warm up the session")
            await bulk(a, b, 4, received)                      # warm-up
            floors, speeds, offers = [], [], []
            for r in range(args.rounds):
                floors.append(await bulk(a, b, args.bulk, received))
                speed, offer_s = await transfer(a, b, src, root / f"out-{r}.bin")
                speeds.append(speed)
                offers.append(offer_s)
        finally:
            await a.stop()
            await b.stop()
    floor, speed = statistics.median(floors), statistics.median(speeds)
    return {"file_mib": args.mib, "rounds": args.rounds,
            "bulk_mib_s": round(floor, 1), "bulk_rounds": [round(x, 1) for x in floors],
            "file_mib_s": round(speed, 1), "file_rounds": [round(x, 1) for x in speeds],
            "offer_s": round(statistics.median(offers), 3),
            "ratio": round(speed / floor, 3), "target": TARGET, "met": speed / floor >= TARGET}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256, help="size of the file sent, MiB")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bulk", type=int, default=64, help="4 MiB messages per floor round")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
