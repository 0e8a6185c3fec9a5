"""Knowledge intake cost: verify + insert per second against raw Ed25519 verify per second.

Prints JSON. Packets from several authors are signed up front; then, in
alternating rounds (so load from other work on the machine hits both alike):

- floor: ``nacl`` VerifyKey.verify of exactly the bytes each packet's signature covers;
- intake: ``KnowledgeEngine.admit`` of each packet's know.push body from a CORE
  peer into a fresh real SQLite file in a temp dir (decode, id, bounds,
  signature, insert with tags and heads, counters).

Two payload sizes: a small text note and a 1 MiB file. ``ratio`` =
intake rate / floor rate (1.0 would mean storage and checks cost nothing).

    .venv/bin/python bench/knowledge_core.py [--packets 2000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import signed
from core.identity import Identity
from core.knowledge import protocol as proto
from core.knowledge.db import KnowledgeDB
from core.knowledge.engine import KnowledgeEngine
from core.peers import Tier
from core.store import Store

AUTHORS = 8


def build(count: int, payload: str) -> list[proto.Packet]:
    authors = [Identity.generate(f"author{i}") for i in range(AUTHORS)]
    data = b"\x5a" * (1 << 20)
    out = []
    for n in range(count):
        author = authors[n % AUTHORS]
        seq = n // AUTHORS + 1
        if payload == "text":
            out.append(proto.create(author, seq, title=f"note {n}", tags=["bench", f"t{n % 5}"],
                                    text=f"knowledge packet number {n} " * 4))
        else:
            out.append(proto.create(author, seq, title=f"file {n}", tags=["bench"],
                                    file=(f"f{n}.bin", "application/octet-stream", data), text=None))
    return out


def floor_rate(packets: list[proto.Packet]) -> float:
    jobs = []
    for p in packets:
        env = p.envelope
        data = signed._signed_bytes(proto.KIND, env["signer"], env["nonce"], env["ts"], env["body"])
        jobs.append((nacl.signing.VerifyKey(bytes.fromhex(env["signer"])), data, env["sig"]))
    start = time.perf_counter()
    for key, data, sig in jobs:
        key.verify(data, sig)
    return len(jobs) / (time.perf_counter() - start)


def intake_rate(packets: list[proto.Packet], tmp: Path, round_no: int) -> float:
    bodies = [proto.push_body(p, 1) for p in packets]
    peer = "e" * 64
    with Store(tmp / f"round{round_no}.db") as store:
        engine = KnowledgeEngine(KnowledgeDB(store), "0" * 64, author_rate=1e9, author_burst=1e9,
                                 peer_bytes_rate=1e15, peer_bytes_burst=1e15)
        start = time.perf_counter()
        for body in bodies:
            verdict = engine.admit(peer, Tier.CORE, False, body)
            if verdict.status != "accepted":
                raise SystemExit(f"bench packet refused: {verdict.reason}: {verdict.message}")
        elapsed = time.perf_counter() - start
        assert engine.db.count == len(bodies)
    return len(bodies) / elapsed


def measure(payload: str, count: int, rounds: int) -> dict:
    packets = build(count, payload)
    floors, intakes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            floors.append(floor_rate(packets))
            intakes.append(intake_rate(packets, Path(tmp), r))
    floor, intake = statistics.median(floors), statistics.median(intakes)
    return {"packets": count, "packet_bytes": len(packets[0].raw),
            "raw_ed25519_verify_per_s": round(floor, 1), "verify_insert_per_s": round(intake, 1),
            "ratio": round(intake / floor, 3),
            "intake_mb_per_s": round(intake * len(packets[0].raw) / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000, help="small packets per round")
    parser.add_argument("--files", type=int, default=40, help="1 MiB file packets per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = {"text": measure("text", args.packets, args.rounds),
              "file_1mib": measure("file", args.files, args.rounds)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
