"""`covey ml ...` end to end: headless node processes on loopback, a worker and the coordinator killed -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "COVEY_DISCOVERY": "0", "COVEY_ML_AUTO_JOIN": "1", "PYTHONPATH": str(REPO)}


def covey(home: Path, *args: str, json_out: bool = True, timeout: float = 60.0):
    cmd = [sys.executable, "-m", "core.app.cli", "--home", str(home), *args] + (["--json"] if json_out else [])
    out = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if json_out else out.stdout


def start(home: Path, listen: str = "127.0.0.1:0") -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    (home / "control.json").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "core.app.cli", "--home", str(home), "--headless",
                             "--listen", listen, "--log-level", "warning"], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: (home / "control.json").exists() or proc.poll() is not None, 30)
    assert proc.poll() is None
    return proc


def wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture
def procs():
    running: list[subprocess.Popen] = []
    yield running
    for p in running:
        if p.poll() is None:
            p.terminate()
    for p in running:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_ml_start_status_follow_and_survive_kills(tmp_path, procs):
    coord_home = tmp_path / "coord"
    procs.append(start(coord_home))
    coord = covey(coord_home, "id")
    port = coord["listen"][0].rsplit(":", 1)[1]
    homes = [tmp_path / f"w{i}" for i in range(4)]
    workers = {}
    for home in homes:
        workers[home] = start(home)
        procs.append(workers[home])
        covey(home, "peers", "add", f"127.0.0.1:{port}")
        covey(home, "peers", "trust", coord["id"], "core")
    wait(lambda: sum(p["connected"] for p in covey(coord_home, "peers", "list")) == 4, 30)
    for p in covey(coord_home, "peers", "list"):
        covey(coord_home, "peers", "trust", p["id"], "core")

    # Rounds long enough (40 local epochs) that the kills below land mid-run, not after it.
    started = covey(coord_home, "ml", "start", "--rounds", "16", "--min-clients", "2", "--deadline", "8",
                    "--lr", "0.05", "--epochs", "40", "--seed", "0")
    task = started["task"]
    wait(lambda: covey(coord_home, "ml", "status", task)["round"] >= 3, 60)

    os.kill(workers[homes[0]].pid, signal.SIGKILL)      # a worker dies mid-run
    os.kill(procs[0].pid, signal.SIGKILL)               # and so does the coordinator
    procs[0].wait(10)
    procs.append(start(coord_home, f"127.0.0.1:{port}"))  # same home, same address
    before = covey(coord_home, "ml", "status", task)
    assert before["state"] == "running" and before["round"] >= 3

    text = covey(coord_home, "ml", "status", task, "--follow", json_out=False, timeout=180)
    lines = text.strip().splitlines()
    assert any(line.startswith("round 16/16 accuracy") for line in lines)
    assert f"task {task} done" in lines

    status = covey(coord_home, "ml", "status", task)
    assert {"task", "state", "round", "rounds", "accuracy", "loss", "epsilon", "history"} <= set(status)
    assert status["state"] == "done" and status["epsilon"] is None
    assert [h["round"] for h in status["history"]] == list(range(1, 17))  # no completed round lost
    assert status["accuracy"] >= 0.9
    assert all({"round", "accuracy", "loss", "accepted", "rejected", "seconds"} <= set(h)
               for h in status["history"])
    assert status["history"][-1]["accepted"] == 3        # the killed worker stayed away

    worker_view = covey(homes[1], "ml", "status", task)  # a worker sees the coordinator's metrics
    assert worker_view["role"] == "worker" and worker_view["round"] == 16
