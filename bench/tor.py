"""Tor on a private test network: start-up times and request latency through an onion service.

Prints one JSON document. Runs only inside a loopback-only network namespace
(it starts real tors; they must never reach the public network)::

    unshare -n sh -c 'ip link set lo up && .venv/bin/python bench/tor.py'

Figures:

- ``network_s``: 3 authorities + 4 relays from launch to a complete consensus;
- ``bootstrap_s``: a ``TorController``-owned tor from ``start()`` to 100 %;
- ``publish_s``: ``publish()`` until a directory accepted the descriptor;
- ``first_dial_s``: bob's ``add_peer("<onion>:8102")`` through a second tor,
  retrying while the descriptor spreads;
- ``latency``: ``node.request(peer, "ping")`` p50/p99 through the onion circuit
  against the same nodes connected directly on loopback (the floor), measured
  in alternating rounds; ``ratio_p50`` is the onion p50 over the direct p50.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from core.errors import CoveyError  # noqa: E402
from core.identity import Identity  # noqa: E402
from core.node import Node  # noqa: E402
from core.net.tor import TorController  # noqa: E402
from tests.integration.tor.network import PrivateTorNetwork, in_loopback_only_namespace  # noqa: E402


async def make_node(root: Path, name: str) -> Node:
    home = root / name
    home.mkdir()
    Identity.generate(name).save(home)
    node = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False,
                                                    connect_timeout=60.0))
    await node.start()
    return node


async def pings(node: Node, peer: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await node.request(peer, "ping", {})
        samples.append(time.perf_counter() - t)
    return samples


def pct(samples: list[float], q: float) -> float:
    return round(statistics.quantiles(samples, n=100)[int(q) - 1] * 1000, 3)


async def measure(root: Path, network: PrivateTorNetwork, rounds: int, per_round: int) -> dict:
    config = network.write_client_config(root / "network.torrc")
    alice, bob, carol = [await make_node(root, n) for n in ("alice", "bob", "carol")]
    alice_tor = TorController(root / "alice-tor", network_config=config)
    bob_tor = TorController(root / "bob-tor", network_config=config)
    try:
        t = time.monotonic()
        await alice_tor.start()
        await alice_tor.wait_bootstrapped(120)
        bootstrap = time.monotonic() - t
        await bob_tor.start()
        t = time.monotonic()
        onion = await alice_tor.publish(alice.transport.port)
        publish = time.monotonic() - t
        await bob_tor.wait_bootstrapped(120)
        await bob.set_proxy("tor", *bob_tor.socks)
        t = time.monotonic()
        while True:
            try:
                await bob.add_peer(f"{onion}:8102")
                break
            except CoveyError:
                if time.monotonic() - t > 120:
                    raise
                await asyncio.sleep(0.5)
        first_dial = time.monotonic() - t
        await carol.add_peer(f"127.0.0.1:{alice.transport.port}")
        await pings(bob, alice.identity.id, 20)   # warm-up
        await pings(carol, alice.identity.id, 20)
        onion_samples, direct_samples = [], []
        for _ in range(rounds):
            onion_samples += await pings(bob, alice.identity.id, per_round)
            direct_samples += await pings(carol, alice.identity.id, per_round)
        return {"bootstrap_s": round(bootstrap, 2), "publish_s": round(publish, 2),
                "first_dial_s": round(first_dial, 2),
                "latency": {"onion_p50_ms": pct(onion_samples, 50), "onion_p99_ms": pct(onion_samples, 99),
                            "direct_p50_ms": pct(direct_samples, 50),
                            "direct_p99_ms": pct(direct_samples, 99),
                            "ratio_p50": round(statistics.median(onion_samples)
                                               / statistics.median(direct_samples), 2),
                            "samples_each": len(onion_samples)}}
    finally:
        for node in (alice, bob, carol):
            await node.stop()
        await alice_tor.stop()
        await bob_tor.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    if not in_loopback_only_namespace():
        print("bench/tor.py starts real tors: run it inside a loopback-only network namespace:\n"
              "  unshare -n sh -c 'ip link set lo up && .venv/bin/python bench/tor.py'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="covey-bench-tor-") as tmp:
        root = Path(tmp)
        network = PrivateTorNetwork(root / "net")
        t = time.monotonic()
        network.start()
        result = {"network_s": round(time.monotonic() - t, 2)}
        try:
            result.update(asyncio.run(measure(root, network, args.rounds, args.per_round)))
        finally:
            network.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
