"""Chat crypto core speed: double-ratchet sessions against a raw AES-256-GCM floor (JSON).

    PYTHONPATH=. .venv/bin/python bench/chat_crypto.py [--messages 5000] [--rounds 3]

- ``one_way``: A encrypts N messages of 100 B, B decrypts them in order
  (each message its own key, one asyncio.Lock each way), messages per second.
- ``floor``: the same N messages through one AESGCM key (encrypt + decrypt),
  measured in alternating rounds with the session run; medians are reported.
- ``ping_pong``: alternate directions every message (a DH ratchet step each).
- ``setup``: bundle verify + X3DH initiate + accept per second.
- ``safety_number``: 60-digit numbers per second (2 x 5200 SHA-512).
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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.identity import Identity  # noqa: E402
from core.chat.safety import safety_number  # noqa: E402
from core.chat.session import Session  # noqa: E402
from core.chat.x3dh_adapter import ChatKeys, verify_bundle  # noqa: E402

PAYLOAD = os.urandom(100)


async def _pair(ka: ChatKeys, kb: ChatKeys) -> tuple[Session, Session]:
    bundle = verify_bundle(kb.bundle_for(ka.id), kb.id, ka.id)
    sa, wire = await Session.initiate(ka, kb.id, bundle, b"hi")
    sb, _ = await Session.accept(kb, ka.id, wire)
    await sa.decrypt(await sb.encrypt(b"ok"))  # both sides past the X3DH header
    return sa, sb


async def one_way(ka, kb, n: int) -> float:
    sa, sb = await _pair(ka, kb)
    start = time.perf_counter()
    for _ in range(n):
        await sb.decrypt(await sa.encrypt(PAYLOAD))
    return n / (time.perf_counter() - start)


async def ping_pong(ka, kb, n: int) -> float:
    sa, sb = await _pair(ka, kb)
    start = time.perf_counter()
    for i in range(n):
        src, dst = (sa, sb) if i % 2 == 0 else (sb, sa)
        await dst.decrypt(await src.encrypt(PAYLOAD))
    return n / (time.perf_counter() - start)


def floor(n: int) -> float:
    aead = AESGCM(os.urandom(32))
    start = time.perf_counter()
    for _ in range(n):
        nonce = os.urandom(12)
        aead.decrypt(nonce, aead.encrypt(nonce, PAYLOAD, b"ad"), b"ad")
    return n / (time.perf_counter() - start)


async def setup(ka, kb, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        bundle = verify_bundle(kb.bundle_for(ka.id), kb.id, ka.id)
        _, wire = await Session.initiate(ka, kb.id, bundle, PAYLOAD)
        await Session.accept(kb, ka.id, wire)
    return n / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        homes = [Path(tmp, name) for name in ("a", "b")]
        for home in homes:
            home.mkdir()
        ka = ChatKeys.load_or_create(homes[0], Identity.generate("a"))
        kb = ChatKeys.load_or_create(homes[1], Identity.generate("b"))
        sessions, floors, pings = [], [], []
        for _ in range(args.rounds):  # alternate so machine load hits both alike
            floors.append(floor(args.messages))
            sessions.append(await one_way(ka, kb, args.messages))
            pings.append(await ping_pong(ka, kb, args.messages // 2))
        setups = await setup(ka, kb, 50)  # each writes the prekey file once (fsync)
        start = time.perf_counter()
        for _ in range(20):
            safety_number(ka.id, kb.id)
        safety = 20 / (time.perf_counter() - start)
    session, floor_rate = statistics.median(sessions), statistics.median(floors)
    print(json.dumps({
        "payload_bytes": len(PAYLOAD),
        "messages": args.messages,
        "rounds": args.rounds,
        "one_way_msgs_per_s": round(session),
        "floor_aesgcm_msgs_per_s": round(floor_rate),
        "ratio_session_to_floor": round(session / floor_rate, 4),
        "ping_pong_msgs_per_s": round(statistics.median(pings)),
        "setup_per_s": round(setups, 1),
        "safety_numbers_per_s": round(safety, 1),
        "issue_target_msgs_per_s": 2000,
        "holds_2000_per_s_budget_for_crypto": session >= 2000,
    }, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
