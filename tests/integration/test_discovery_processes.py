"""Three separate processes find each other by LAN discovery on loopback.

Each process runs one Discovery (group joined on 127.0.0.1, TTL 1, a random
free group port) and prints what it found as JSON. It keeps beaconing for a
while after it has heard both others, so a slower sibling still hears it.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

NODE_SCRIPT = r"""
import asyncio, json, sys, time
from core.net.discovery import Discovery
from core.identity import Identity

group_port, listen_port, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
INTERVAL, LINGER, DEADLINE = 0.2, 2.0, 45.0

async def main():
    identity = Identity.generate(name)
    found = {}
    disc = Discovery(identity, listen_port, port=group_port, interval=INTERVAL, interface="127.0.0.1",
                     on_found=lambda b: found.setdefault(b.id, b))
    started = time.monotonic()
    complete_at = None
    async with disc:
        while time.monotonic() - started < DEADLINE:
            if len(found) >= 2 and complete_at is None:
                complete_at = time.monotonic()
            if complete_at is not None and time.monotonic() - complete_at >= LINGER:
                break
            await asyncio.sleep(0.05)
        rejected = disc.rejected
    print(json.dumps({
        "id": identity.id, "name": name, "fingerprint": identity.fingerprint, "port": listen_port, "rejected": rejected,
        "found": [{"id": b.id, "name": b.name, "host": b.host, "port": b.port,
                   "fingerprint": b.fingerprint} for b in found.values()],
    }))

asyncio.run(main())
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_three_processes_each_find_the_other_two():
    group_port = free_udp_port()
    names = {"n1": 9201, "n2": 9202, "n3": 9203}
    procs = [
        subprocess.Popen([sys.executable, "-c", NODE_SCRIPT, str(group_port), str(port), name],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, port in names.items()
    ]
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    by_id = {r["id"]: r for r in reports}
    assert len(by_id) == 3
    for report in reports:
        others = {(r["id"], r["name"], r["port"], r["fingerprint"]) for r in reports if r is not report}
        heard = {(f["id"], f["name"], f["port"], f["fingerprint"]) for f in report["found"]}
        assert heard == others, f"{report['name']} heard {heard}"
        assert all(f["host"] == "127.0.0.1" for f in report["found"])
        assert report["rejected"] == 0


OFFLINE_SCRIPT = r"""
import asyncio, json, sys
from core.net.discovery import Discovery
from core.identity import Identity

async def main():
    found = {"a": [], "b": []}
    a = Discovery(Identity.generate("a"), 9301, port=int(sys.argv[1]), interval=0.1, on_found=found["a"].append)
    b = Discovery(Identity.generate("b"), 9302, port=int(sys.argv[1]), interval=0.1, on_found=found["b"].append)
    async with a, b:
        for _ in range(600):
            if found["a"] and found["b"]:
                break
            await asyncio.sleep(0.05)
        print(json.dumps({"joined_on": [a.joined_on, b.joined_on],
                          "a_found": [x.name for x in found["a"]], "b_found": [x.name for x in found["b"]]}))

asyncio.run(main())
"""


def _can_unshare_network() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_network(), reason="needs `unshare -n` (root) to get a loopback-only network")
def test_on_a_machine_with_only_loopback_the_default_interface_falls_back_to_loopback():
    # A fresh network namespace has nothing but `lo` (no default route): the
    # default interface 0.0.0.0 cannot join the group there, and nothing can
    # leave the machine, so this is the one place the default is safe to test.
    script = f'ip link set lo up && exec "$0" -c "$1" {free_udp_port()}'
    result = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable, OFFLINE_SCRIPT],
                            cwd=REPO, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"joined_on": ["127.0.0.1", "127.0.0.1"], "a_found": ["b"], "b_found": ["a"]}
