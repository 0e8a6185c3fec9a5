"""Chat between two nodes against the node's own floors, measured in the same run (JSON).

    PYTHONPATH=. .venv/bin/python bench/chat.py [--samples 1000] [--rounds 3] [--messages 5000]

Two real nodes on 127.0.0.1 (one process, one event loop: both ends' crypto
share a core, as do both ends of the floor; and, for latency, in two processes):

- ``latency_one_process``: ``ChatService.send`` until the message appears in
  the receiver's event stream (``chat_message``), p50 over ``--samples``
  messages, against the node's plain request latency (``ping`` round trip),
  measured in alternating rounds. Target: ratio <= 2.
- ``latency_two_processes``: the same with the receiver in a child process
  (its arrival time is its ``perf_counter()``, the system-wide monotonic clock).
- ``throughput``: ``--messages`` messages sent as fast as the outbox allows,
  with delivery receipts (acks) and read receipts on (the receiver reads every
  500 messages), until the last one is delivered and acknowledged. Target:
  >= 2,000 messages/s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.node import Node  # noqa: E402
from local_nodes import node, pair  # noqa: E402  (bench/ is the script directory)


async def chat_latency(a: Node, b: Node, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future] = []

    def arrived(event) -> None:
        if event.data.get("direction") == "in" and waiting and not waiting[0].done():
            waiting[0].set_result(time.perf_counter())
    off = b.events.on("chat_message", arrived)
    chat = a.service("chat")
    samples = []
    # One watchdog for the run rather than asyncio.wait_for per sample: wait_for costs about
    # 4 us a sample (a second future, a timer, callbacks) that the floor, node.request with its
    # table of deadlines, does not pay.
    watchdog = asyncio.ensure_future(_watchdog(waiting, 10.0))
    try:
        for i in range(n):
            waiting[:] = [loop.create_future()]
            start = time.perf_counter()
            await chat.send("b", f"latency probe {i}")
            samples.append(await waiting[0] - start)
    finally:
        off()
        watchdog.cancel()
    return samples


async def _watchdog(waiting: list, seconds: float) -> None:
    """Fail the awaited arrival (``waiting[0]``) once it has waited longer than ``seconds``."""
    seen, since = None, time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        fut = waiting[0] if waiting else None
        if fut is not seen:
            seen, since = fut, time.monotonic()
        elif fut is not None and not fut.done() and time.monotonic() - since > seconds:
            fut.set_exception(TimeoutError(f"a chat message did not arrive within {seconds} s"))


async def request_latency(a: Node, b: Node, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await a.request(b.identity.id, "ping", {}, timeout=10)
        samples.append(time.perf_counter() - start)
    return samples


async def throughput(a: Node, b: Node, n: int) -> float:
    chat_a, chat_b = a.service("chat"), b.service("chat")
    link = chat_a._link(b.identity.id)
    received = [0]

    def arrived(event) -> None:
        if event.data.get("direction") == "in":
            received[0] += 1
            if received[0] % 500 == 0:
                chat_b.read(a.identity.id)          # read receipts flow back too
    off = b.events.on("chat_message", arrived)
    try:
        start = time.perf_counter()
        for i in range(n):
            while link.out.unacked >= 900:
                await asyncio.sleep(0.001)
            await chat_a.send("b", f"throughput message {i:06d}")
        while received[0] < n or link.out.unacked:
            await asyncio.sleep(0.001)
        return n / (time.perf_counter() - start)
    finally:
        off()


async def serve(directory: str) -> None:
    """Child process of ``--processes``: node b; prints its id and port, trusts the id it reads,
    then prints ``perf_counter()`` (CLOCK_MONOTONIC, shared by processes) as each message arrives."""
    b = await node(Path(directory), "b")
    print(json.dumps({"id": b.identity.id, "port": b.transport.port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    a_id = (await reader.readline()).decode().strip()
    b.events.on("chat_message", lambda e: e.data.get("direction") == "in"
                and print(repr(time.perf_counter()), flush=True))
    while a_id not in b.connected_peers():
        await asyncio.sleep(0.01)
    b.peers.set_tier(a_id, "external")
    print("ready", flush=True)
    await reader.readline()              # the parent closes stdin when done
    await b.stop()


async def two_processes(samples: int, rounds: int) -> dict:
    """Latency with node b in its own process (a's clock and b's are the same CLOCK_MONOTONIC)."""
    with tempfile.TemporaryDirectory() as tmp:
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", tmp, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        a = None
        try:
            info = json.loads(await child.stdout.readline())
            (Path(tmp) / "a-root").mkdir()
            a = await node(Path(tmp) / "a-root", "a")
            child.stdin.write(a.identity.id.encode() + b"\n")
            await a.add_peer(f"127.0.0.1:{info['port']}", key=info["id"], name="b")
            a.peers.set_tier(info["id"], "external")
            assert (await child.stdout.readline()).strip() == b"ready"
            chat = a.service("chat")

            async def probe(n: int) -> list[float]:
                out = []
                for i in range(n):
                    start = time.perf_counter()
                    await chat.send("b", f"latency probe {i}")
                    out.append(float(await child.stdout.readline()) - start)
                return out
            await probe(50)
            await request_latency(a, _Peer(info["id"]), 50)
            chat_s, floor_s = [], []
            for _ in range(rounds):
                chat_s += await probe(samples)
                floor_s += await request_latency(a, _Peer(info["id"]), samples)
        finally:
            if a is not None:
                await a.stop()
            child.stdin.close()
            await asyncio.wait_for(child.wait(), 20)
    return _latency(chat_s, floor_s)


class _Peer:
    """Just enough of a Node for request_latency: its identity id."""

    def __init__(self, peer_id: str):
        self.identity = type("I", (), {"id": peer_id})()


def _latency(chat_s: list[float], floor_s: list[float]) -> dict:
    chat_p50, floor_p50 = statistics.median(chat_s), statistics.median(floor_s)
    return {"chat_p50_us": round(chat_p50 * 1e6, 1),
            "chat_p90_us": round(statistics.quantiles(chat_s, n=10)[-1] * 1e6, 1),
            "request_p50_us": round(floor_p50 * 1e6, 1), "ratio": round(chat_p50 / floor_p50, 2),
            "target": "ratio <= 2", "samples": len(chat_s)}


async def main(samples: int, rounds: int, messages: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = await pair(Path(tmp))
        try:
            await chat_latency(a, b, 50)             # warm-up: session, bundle, caches
            await request_latency(a, b, 50)
            chat_s, floor_s = [], []
            for _ in range(rounds):
                chat_s += await chat_latency(a, b, samples)
                floor_s += await request_latency(a, b, samples)
            rates = [await throughput(a, b, messages) for _ in range(rounds)]
        finally:
            await a.stop()
            await b.stop()
    rate = statistics.median(rates)
    latency = _latency(chat_s, floor_s)
    apart = await two_processes(samples, rounds)
    return {
        "latency_one_process": latency,
        "latency_two_processes": apart,
        "throughput": {"msgs_per_s": round(rate), "rounds": [round(r) for r in rates],
                       "messages": messages, "receipts": "delivery + read", "target": ">= 2000"},
        "holds": {"latency_one_process": latency["ratio"] <= 2.0,
                  "latency_two_processes": apart["ratio"] <= 2.0, "throughput": rate >= 2000},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        sys.exit(0)
    result = asyncio.run(main(args.samples, args.rounds, args.messages))
    result["all_hold"] = all(result["holds"].values())
    print(json.dumps(result, indent=2))
