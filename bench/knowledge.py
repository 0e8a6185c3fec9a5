"""Knowledge gossip on a 10-node CORE mesh on loopback (one process, one event loop).

Prints JSON:

- ``spread``: ``--packets`` text packets published at random nodes (all at
  once, then gossip). Time from the first publish until every node holds
  every packet; deliveries per packet per node = copies received (accepted
  + duplicates + rejected) / (packets x (nodes - 1)), target at most 2.
- ``catchup``: one node stopped, ``--missed`` packets published at random
  other nodes, the node restarted on the same home and port: time from its
  start until it holds all of them, and copies it received per missed packet.
- floors, measured in the same run (all nodes share one event loop, so the
  work adds up): ``transport_floor`` sends each packet's know.push body once
  to every other node through a no-op handler (a perfect flood without
  intake); ``intake_floor`` admits each packet once per receiving node with
  ``KnowledgeEngine.admit`` straight into a fresh SQLite store (verify +
  store, no network); ``floor`` is their sum, the least any gossip can cost
  here. For the catch-up the same two parts for the missed packets into one
  node, in know.want-sized batches. ``ratio`` = measured / floor.

    .venv/bin/python bench/knowledge.py [--nodes 10] [--packets 1000] [--missed 500]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import events as ev
from core.config import Settings
from core.identity import Identity
from core.knowledge import protocol as proto
from core.knowledge.db import KnowledgeDB
from core.knowledge.engine import KnowledgeEngine
from core.node import Node
from core.store import Store

PUSH_WINDOW = 8
PULL_BATCH = 64


async def start(home: Path, port: int = 0) -> Node:
    if not home.exists():
        home.mkdir(parents=True)
        Identity.generate(home.name).save(home)
    node = Node(home, Identity.load(home), Settings(listen=f"127.0.0.1:{port}", discovery=False))
    await node.start()
    return node


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not reached within {timeout} s")
        await asyncio.sleep(0.005)


def kn(node: Node):
    return node.service("knowledge")


def copies(node: Node) -> int:
    total = kn(node).engine.counters.view()["total"]
    return total["accepted"] + total["duplicates"] + sum(total["rejected"].values())


async def mesh(nodes: list[Node]) -> None:
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            await a.add_peer(f"127.0.0.1:{b.transport.port}")
    for a in nodes:
        await until(lambda a=a: len(a.connected_peers()) == len(nodes) - 1, 30, "full mesh")
        for b in nodes:
            if b is not a:
                a.trust(b.identity.id, "core")
    await until(lambda: all(kn(n).pending() == 0 for n in nodes), 60, "quiet mesh")


async def spread(nodes: list[Node], count: int, rng: random.Random, timeout: float) -> dict:
    before = sum(copies(n) for n in nodes)
    have = [kn(n).db.count for n in nodes]
    t0 = time.perf_counter()
    published = []
    for i in range(count):
        node = rng.choice(nodes)
        published.append((await kn(node).publish(text=f"packet {i} " + "x" * 200, tags=["bench"]))["id"])
        if i % 50 == 49:
            await asyncio.sleep(0)     # let gossip run while publishing, as real publishers would
    t_published = time.perf_counter() - t0
    await until(lambda: all(kn(n).db.count == h + count for n, h in zip(nodes, have, strict=True)), timeout, "full spread")
    elapsed = time.perf_counter() - t0
    await until(lambda: all(kn(n).pending() == 0 for n in nodes), 60, "quiet after spread")
    received = sum(copies(n) for n in nodes) - before
    return {"packets": count, "seconds": round(elapsed, 3), "publish_seconds": round(t_published, 3),
            "deliveries_per_packet_per_node": round(received / (count * (len(nodes) - 1)), 3),
            "all_hold_all": all(all(kn(n).db.has(pid) for pid in published) for n in nodes)}


async def spread_floor(nodes: list[Node], count: int, rng: random.Random) -> float:
    """Every packet-sized push sent once to every other node through a no-op handler."""
    for n in nodes:
        n.on_message("bench.sink", lambda peer, body: {"ok": True})
    identity = Identity.generate("floor")
    body = proto.push_body(proto.create(identity, 1, text="packet 0 " + "x" * 200, tags=["bench"]), 1)
    origins = [rng.choice(nodes) for _ in range(count)]
    t0 = time.perf_counter()

    async def fan(src: Node, dst: Node, n: int):
        for start in range(0, n, PUSH_WINDOW):
            await asyncio.gather(*(src.request(dst.identity.id, "bench.sink", body)
                                   for _ in range(min(PUSH_WINDOW, n - start))))
    jobs = []
    for src in nodes:
        n = origins.count(src)
        jobs += [fan(src, dst, n) for dst in nodes if dst is not src]
    await asyncio.gather(*jobs)
    return time.perf_counter() - t0


def intake_floor(root: Path, packets: list[proto.Packet], receivers: int) -> float:
    """Seconds to admit every packet once into each of ``receivers`` fresh stores (no network)."""
    stores = [Store(root / f"floor-{i}" / "covey.db") for i in range(receivers)]
    try:
        engines = [KnowledgeEngine(KnowledgeDB(s), Identity.generate("r").id) for s in stores]
        peer = Identity.generate("sender").id
        t0 = time.perf_counter()
        for engine in engines:
            for packet in packets:
                verdict = engine.admit(peer, "core", False, proto.push_body(packet, 1))
                assert verdict.status == "accepted", verdict
        return time.perf_counter() - t0
    finally:
        for store in stores:
            store.close()


def floor_packets(count: int, text: str) -> list[proto.Packet]:
    authors = [Identity.generate(f"a{i}") for i in range(10)]
    return [proto.create(authors[i % 10], i // 10 + 1, text=f"{text} {i} " + "x" * 200, tags=["bench"])
            for i in range(count)]


async def catchup(root: Path, nodes: list[Node], missed: int, rng: random.Random, timeout: float) -> tuple[dict, Node]:
    victim = nodes[-1]
    others = nodes[:-1]
    port, home = victim.transport.port, victim.home
    await victim.stop()
    published = [(await kn(rng.choice(others)).publish(text=f"missed {i} " + "y" * 200))["id"]
                 for i in range(missed)]
    await until(lambda: all(all(kn(n).db.has(pid) for pid in published) for n in others), 120, "spread without victim")
    await until(lambda: all(kn(n).pending() == 0 for n in others), 60, "quiet before restart")
    t0 = time.perf_counter()
    node = Node(home, Identity.load(home), Settings(listen=f"127.0.0.1:{port}", discovery=False))
    connected: list[float] = []
    node.events.on(ev.PEER_CONNECTED, lambda e: connected.append(time.perf_counter()))
    await node.start()
    nodes[-1] = node
    before = copies(node)
    await until(lambda: all(kn(node).db.has(pid) for pid in published), timeout, "catch-up")
    done = time.perf_counter()
    await until(lambda: kn(node).pending() == 0, 60, "quiet after catch-up")
    return {"missed": missed, "seconds": round(done - t0, 3),
            "after_connect_seconds": round(done - connected[0], 3),
            "deliveries_per_packet": round((copies(node) - before) / missed, 3)}, node


async def catchup_floor(nodes: list[Node], missed: int) -> float:
    """The missed packets' bytes moved to one node in pull-sized batches through a no-op handler."""
    src, dst = nodes[0], nodes[-1]
    dst.on_message("bench.sink", lambda peer, body: {"ok": True})
    identity = Identity.generate("floor")
    items = [proto.push_body(proto.create(identity, i + 1, text=f"missed {i} " + "y" * 200), 1)
             for i in range(missed)]
    t0 = time.perf_counter()
    for start in range(0, missed, PULL_BATCH):
        await src.request(dst.identity.id, "bench.sink", proto.reply_body(items[start:start + PULL_BATCH], False))
    return time.perf_counter() - t0


async def main(args) -> dict:
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="covey-bench-knowledge-") as tmp:
        root = Path(tmp)
        nodes = [await start(root / f"n{i}") for i in range(args.nodes)]
        try:
            t0 = time.perf_counter()
            await mesh(nodes)
            mesh_s = time.perf_counter() - t0
            floor_s = await spread_floor(nodes, args.packets, rng)
            result = await spread(nodes, args.packets, rng, args.timeout)
            intake_s = intake_floor(root, floor_packets(args.packets, "packet"), args.nodes - 1)
            result.update(transport_floor_seconds=round(floor_s, 3), intake_floor_seconds=round(intake_s, 3),
                          floor_seconds=round(floor_s + intake_s, 3),
                          ratio=round(result["seconds"] / (floor_s + intake_s), 2))
            caught, _ = await catchup(root, nodes, args.missed, rng, args.timeout)
            floor_c = await catchup_floor(nodes, args.missed)
            intake_c = intake_floor(root / "c", floor_packets(args.missed, "missed"), 1)
            caught.update(transport_floor_seconds=round(floor_c, 3), intake_floor_seconds=round(intake_c, 3),
                          floor_seconds=round(floor_c + intake_c, 3),
                          ratio=round(caught["after_connect_seconds"] / (floor_c + intake_c), 2))
        finally:
            for node in nodes:
                await node.stop()
    return {"bench": "knowledge", "nodes": args.nodes, "mesh_seconds": round(mesh_s, 3), "spread": result,
            "catchup": caught,
            "holds": {"every_node_holds_all": result["all_hold_all"],
                      "deliveries_at_most_2": result["deliveries_per_packet_per_node"] <= 2.0,
                      "catchup_nothing_twice": caught["deliveries_per_packet"] <= 1.0}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--packets", type=int, default=1000)
    parser.add_argument("--missed", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
