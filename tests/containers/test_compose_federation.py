"""A federation of real containers from the compose file `covey cluster compose` writes.

The image is built from packaging/Dockerfile by `make test-containers` (packaging/podman.sh),
which sets COVEY_CONTAINER_IMAGE; without it this module skips. Five containers come up on
their private network (a bootstrap, an aggregator, two workers, a client), their health
checks pass, they find each other through the bootstrap list, train 3 rounds, and
`down` leaves no container and no volume behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

IMAGE = os.environ.get("COVEY_CONTAINER_IMAGE", "")
REPO = Path(__file__).resolve().parents[2]
PROJECT = "coveyci"
NODES = ["bootstrap-0", "aggregator-0", "worker-0", "worker-1", "client-0"]
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "packaging" / "containers.conf")}

pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(not IMAGE, reason="no image: `make test-containers` builds one"),
              pytest.mark.timeout(600)]


def compose_tool() -> str:
    found = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which("podman-compose")
    assert found, "podman-compose is not installed (make test-containers installs it)"
    return found


def run(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)
    assert out.returncode == 0, f"{' '.join(args)}: {out.stderr or out.stdout}"
    return out.stdout


def covey_in(node: str, *args: str):
    """`covey ARGS --json` inside the node's container, through its control socket."""
    return json.loads(run("podman", "exec", f"{PROJECT}_{node}_1", "covey", *args, "--json", timeout=60))


def healthy(node: str) -> bool:
    """The image's own health check (podman runs it on demand: no systemd timers here)."""
    return subprocess.run(["podman", "healthcheck", "run", f"{PROJECT}_{node}_1"], env=ENV,
                          capture_output=True, timeout=30).returncode == 0


def wait_for(what: str, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(1)


def project_containers() -> list[str]:
    return run("podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}",
               "--format", "{{.Names}}").split()


@pytest.fixture
def federation(tmp_path):
    compose_file = tmp_path / "compose.yml"
    run(sys.executable, "-m", "core.app.cli", "cluster", "compose", "--nodes", str(len(NODES)),
        "--topology", "seed", "--image", IMAGE, "--out", str(compose_file))
    tool = [compose_tool(), "-f", str(compose_file), "-p", PROJECT]
    run(*tool, "down", "-v", timeout=120)  # a run that died half-way left nothing behind
    run(*tool, "up", "-d", timeout=300)
    try:
        yield tool
    finally:
        subprocess.run([*tool, "down", "-v"], env=ENV, capture_output=True, timeout=180)


def test_compose_federation_trains_three_rounds_and_leaves_nothing(federation):
    assert sorted(project_containers()) == sorted(f"{PROJECT}_{n}_1" for n in NODES)
    for node in NODES:
        wait_for(f"{node} healthy", lambda node=node: healthy(node), 120)

    ids = {node: covey_in(node, "id")["id"] for node in NODES}
    names = {v: k for k, v in ids.items()}

    def peers_of(node: str) -> dict[str, dict]:
        return {names.get(p["id"], p["id"]): p for p in covey_in(node, "peers", "list")}

    # Found through the bootstrap list alone (no LAN discovery in containers).
    for node, expected in {"aggregator-0": {"bootstrap-0"},
                           "worker-0": {"bootstrap-0", "aggregator-0"},
                           "worker-1": {"bootstrap-0", "aggregator-0"},
                           "client-0": {"bootstrap-0", "aggregator-0"}}.items():
        wait_for(f"{node} connected to {sorted(expected)}",
                 lambda node=node, expected=expected: all(
                     peers_of(node).get(p, {}).get("connected") for p in expected), 90)

    # What an operator does: the aggregator coordinates, the workers trust it and join.
    coordinator = "aggregator-0"
    for worker in ("worker-0", "worker-1"):
        covey_in(worker, "peers", "trust", ids[coordinator], "core")
        covey_in(worker, "ml", "auto-join", "on")
        covey_in(coordinator, "peers", "trust", ids[worker], "core")
    task = covey_in(coordinator, "ml", "start", "--rounds", "3", "--min-clients", "2",
                    "--deadline", "60", "--seed", "0")["task"]
    wait_for("3 rounds", lambda: covey_in(coordinator, "ml", "status", task)["state"] == "done", 240)
    status = covey_in(coordinator, "ml", "status", task)
    assert [h["round"] for h in status["history"]] == [1, 2, 3]
    assert all(h["accepted"] == 2 for h in status["history"])
    assert status["accuracy"] > 0.8

    run(*federation, "down", "-v", timeout=180)
    assert project_containers() == []
    volumes = run("podman", "volume", "ls", "--format", "{{.Name}}").split()
    assert not [v for v in volumes if v.startswith(f"{PROJECT}_")]
