"""`covey cluster`: a local multi-process federation started, inspected, hurt and stopped."""
from __future__ import annotations

import json
import subprocess
import time

from .conftest import COVEY, env


def cluster(directory, *args: str) -> dict:
    out = subprocess.run([*COVEY, "cluster", *args, "--dir", str(directory), "--json"],
                         capture_output=True, text=True, env=env(), timeout=90)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_peers(directory, name: str, count: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = next(n for n in cluster(directory, "status")["nodes"] if n["name"] == name)
        if row["state"] == "running" and row["peers"] == count:
            return row
        assert time.monotonic() < deadline, row
        time.sleep(0.2)


def test_cluster_up_status_kill_start_down(tmp_path):
    directory = tmp_path / "cl"
    try:
        up = cluster(directory, "up", "--nodes", "3")
        assert [n["name"] for n in up["nodes"]] == ["node-0", "node-1", "node-2"]
        for row in up["nodes"]:
            assert set(row) >= {"name", "role", "id", "address", "peers", "state", "pid", "rss_mb"}
            assert row["state"] == "running" and 0 < row["rss_mb"] < 200
        wait_peers(directory, "node-0", 2)
        cluster(directory, "kill", "node-1")
        assert wait_peers(directory, "node-0", 1)
        cluster(directory, "start", "node-1")
        wait_peers(directory, "node-0", 2)
    finally:
        stopped = cluster(directory, "down")
    assert stopped["stopped"] == 3
    assert all(n["state"] == "stopped" for n in cluster(directory, "status")["nodes"])


def processes_of(directory) -> list[int]:
    """Live processes whose command line names a home under ``directory``."""
    import psutil
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(directory) in a for a in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_seed_topology_roles_links_kill_start_and_down_leaves_no_process(tmp_path):
    directory = tmp_path / "seed"
    try:
        up = cluster(directory, "up", "--nodes", "10", "--topology", "seed")
        assert len(processes_of(directory)) == 10
        roles = [n["role"] for n in up["nodes"]]
        assert {r: roles.count(r) for r in set(roles)} == {"bootstrap": 2, "aggregator": 1, "worker": 6, "client": 1}
        boots = {n["id"] for n in up["nodes"] if n["role"] == "bootstrap"}
        for row in up["nodes"]:
            assert row["state"] == "running" and row["pid"] > 0
            home = directory / row["name"]
            peers = json.loads(subprocess.run([*COVEY, "--home", str(home), "peers", "list", "--json"],
                                              capture_output=True, text=True, env=env(), timeout=60).stdout)
            connected = {p["id"] for p in peers if p["connected"] and p["tier"] == "core"}
            assert boots - {row["id"]} <= connected, row["name"]
            assert len(connected - boots) >= 3, row["name"]
        worker = next(n for n in up["nodes"] if n["role"] == "worker")
        before = wait_peers(directory, worker["name"], worker["peers"])
        cluster(directory, "kill", worker["name"])
        assert next(n for n in cluster(directory, "status")["nodes"] if n["name"] == worker["name"])["state"] == "stopped"
        cluster(directory, "start", worker["name"])
        wait_peers(directory, worker["name"], before["peers"], timeout=60)
    finally:
        stopped = cluster(directory, "down")
    assert stopped["stopped"] == 10
    assert processes_of(directory) == []


def test_a_failed_up_stops_what_it_started_and_says_why(tmp_path):
    directory = tmp_path / "bad"
    directory.mkdir()
    (directory / "node-2").mkdir()
    (directory / "node-2" / "config.json").write_text('{"mode": "bogus"}')
    out = subprocess.run([*COVEY, "cluster", "up", "--nodes", "4", "--dir", str(directory), "--json"],
                         capture_output=True, text=True, env=env(), timeout=120)
    assert out.returncode == 1
    assert "node-2" in out.stderr and "stopping the nodes it started" in out.stderr
    assert processes_of(directory) == []
