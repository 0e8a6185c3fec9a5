"""The PyInstaller one-folder bundle, run as a user runs it: no Python environment around it.

`make bundle` builds it; `make test-bundle` sets COVEY_BUNDLE to its `covey` program and
runs this module (without it this module skips). Each test starts the program from a
directory outside the source tree with a scrubbed environment, so nothing is imported
from the repository or the virtual environment.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

BUNDLE = os.environ.get("COVEY_BUNDLE", "")

pytestmark = [pytest.mark.skipif(not BUNDLE, reason="no bundle: `make test-bundle` builds one"),
              pytest.mark.timeout(300)]


def clean_env() -> dict[str, str]:
    keep = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    return {**keep, "COVEY_DISCOVERY": "0", "QT_QPA_PLATFORM": "offscreen"}


def covey(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    out = subprocess.run([BUNDLE, *args], cwd=cwd, env=clean_env(), capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"covey {' '.join(args)}: {out.stderr[-2000:]}"
    return out


def covey_json(cwd: Path, *args: str, timeout: float = 90):
    return json.loads(covey(cwd, *args, "--json", timeout=timeout).stdout)


def wait_for(what: str, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def test_bundle_inits_an_identity_and_runs_a_headless_node(tmp_path):
    home = tmp_path / "home"
    assert covey(tmp_path, "--version").stdout.strip()
    created = covey_json(tmp_path, "--home", str(home), "init")
    assert len(created["id"]) == 64 and (home / "identity.key").stat().st_mode & 0o777 == 0o600

    node = subprocess.Popen([BUNDLE, "--home", str(home), "--headless", "--listen", "127.0.0.1:0"],
                            cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for("control socket", lambda: (home / "control.json").exists() or node.poll() is not None)
        assert node.poll() is None, node.stderr.read() if node.stderr else ""
        running = covey_json(tmp_path, "--home", str(home), "id")
        assert running["id"] == created["id"]
        port = running["listen"][0].rsplit(":", 1)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
            assert health.status == 200 and json.load(health)["status"] == "pass"
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(30) == 0


def test_bundle_runs_a_three_node_cluster_and_a_delegated_task(tmp_path):
    directory = tmp_path / "cluster"
    try:
        up = covey_json(tmp_path, "cluster", "up", "--nodes", "3", "--topology", "star",
                        "--dir", str(directory), timeout=180)
        assert [n["state"] for n in up["nodes"]] == ["running"] * 3
        hub, spoke = up["nodes"][0], up["nodes"][1]   # star: every node dials and trusts node-0
        # A delegated task runs in a child process, which in a bundle is the bundle itself.
        ran = covey_json(tmp_path, "--home", str(directory / spoke["name"]), "tasks", "run",
                         hub["id"], "echo", "text=from the bundle")
        assert ran["state"] == "done" and ran["verified"] is True
        assert ran["result"] == {"text": "from the bundle", "length": 15}
    finally:
        down = covey_json(tmp_path, "cluster", "down", "--dir", str(directory), timeout=120)
    assert down["stopped"] == 3
