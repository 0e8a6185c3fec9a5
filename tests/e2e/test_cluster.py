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
