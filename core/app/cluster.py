"""`covey cluster`: a local multi-process federation for trying things out.

Each node is a `covey --headless` process with its own home under the
cluster directory, listening on 127.0.0.1. ``cluster.json`` in that
directory records names, homes, ports and pids so ``status``, ``kill``,
``start`` and ``down`` work from any later shell.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.app.client import call
from core.errors import BadRequest, CoveyError, NotRunning, TimedOut
from core.identity import ensure_identity

STATE_FILE = "cluster.json"
START_TIMEOUT = 20.0


def _state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def load_state(directory: Path) -> dict:
    try:
        return json.loads(_state_path(directory).read_text())
    except FileNotFoundError:
        raise NotRunning(f"no cluster in {directory}: create one with `covey cluster up --nodes N`") from None
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{_state_path(directory)} is unreadable ({exc})") from None


def save_state(directory: Path, state: dict) -> None:
    tmp = _state_path(directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, _state_path(directory))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def _spawn(node: dict) -> int:
    home = Path(node["home"])
    log = open(home / "node.log", "ab")
    env = dict(os.environ)
    env.setdefault("COVEY_DISCOVERY", "0")
    # In a PyInstaller bundle the executable is `covey` itself.
    command = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "desktop.launcher"]
    proc = subprocess.Popen(
        [*command, "--home", str(home), "--headless",
         "--listen", f"127.0.0.1:{node.get('port', 0)}"],
        stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True)
    log.close()
    return proc.pid


def _wait_ready(node: dict, pid: int) -> dict:
    home = Path(node["home"])
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            tail = (home / "node.log").read_text(errors="replace").splitlines()[-3:]
            raise CoveyError(f"node {node['name']} exited during start: {' | '.join(tail)}")
        try:
            control = json.loads((home / "control.json").read_text())
            if control.get("pid") == pid:
                return call(home, "id", {})
        except (OSError, ValueError, CoveyError):
            pass  # not up yet: keep polling until the deadline
        time.sleep(0.05)
    raise TimedOut(f"node {node['name']} did not start within {START_TIMEOUT:.0f} s")


def up(directory: Path, nodes: int, topology: str = "seed") -> dict:
    """Create (or restart) N nodes and connect them: every node <-> the seed, all CORE."""
    if not 1 <= nodes <= 64:
        raise BadRequest("--nodes must be between 1 and 64")
    if topology not in ("seed", "mesh"):
        raise BadRequest("--topology must be seed or mesh")
    directory.mkdir(parents=True, exist_ok=True)
    if _state_path(directory).exists():
        state = load_state(directory)
        if any(_alive(n.get("pid")) for n in state["nodes"]):
            raise BadRequest(f"a cluster is already running in {directory}: `covey cluster down` first")
    state = {"topology": topology, "nodes": []}
    for i in range(nodes):
        name = f"node-{i}"
        home = directory / name
        identity, _ = ensure_identity(home, name)
        state["nodes"].append({"name": name, "home": str(home), "id": identity.id,
                               "role": "seed" if i == 0 else "peer", "port": 0, "pid": None})
    pids = [_spawn(n) for n in state["nodes"]]
    for node, pid in zip(state["nodes"], pids, strict=True):
        info = _wait_ready(node, pid)
        node["pid"], node["port"] = pid, int(info["listen"][0].rsplit(":", 1)[1])
    save_state(directory, state)
    pairs = []
    for i, a in enumerate(state["nodes"]):
        for b in state["nodes"][i + 1:]:
            if topology == "mesh" or a["role"] == "seed":
                pairs.append((a, b))
    for a, b in pairs:
        call(Path(b["home"]), "peers.add", {"address": f"127.0.0.1:{a['port']}", "key": a["id"], "name": a["name"]})
        call(Path(b["home"]), "peers.trust", {"peer": a["id"], "tier": "core"})
        _trust_when_known(Path(a["home"]), b["id"])
    return status(directory)


def _trust_when_known(home: Path, peer_id: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            call(home, "peers.trust", {"peer": peer_id, "tier": "core"})
            return
        except CoveyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def status(directory: Path) -> dict:
    import psutil
    state = load_state(directory)
    rows = []
    for node in state["nodes"]:
        row = {"name": node["name"], "role": node["role"], "id": node["id"],
               "address": f"127.0.0.1:{node['port']}", "peers": 0, "state": "stopped",
               "pid": node.get("pid") or 0, "rss_mb": 0.0}
        if _alive(node.get("pid")):
            row["state"] = "running"
            try:
                row["rss_mb"] = round(psutil.Process(node["pid"]).memory_info().rss / 2**20, 1)
                row["peers"] = sum(p["connected"] for p in call(Path(node["home"]), "peers.list", {}, timeout=5))
            except (CoveyError, psutil.Error) as exc:
                row["state"] = f"unresponsive ({exc})"
        rows.append(row)
    return {"nodes": rows}


def _find(state: dict, name: str) -> dict:
    for node in state["nodes"]:
        if node["name"] == name:
            return node
    raise BadRequest(f"no node {name!r} in this cluster: {', '.join(n['name'] for n in state['nodes'])}")


def kill(directory: Path, name: str) -> dict:
    """SIGKILL one node (to see the others cope)."""
    state = load_state(directory)
    node = _find(state, name)
    if _alive(node.get("pid")):
        os.kill(node["pid"], signal.SIGKILL)
    return {"killed": name}


def start(directory: Path, name: str) -> dict:
    """Start a stopped node again on its old port, so its peers reconnect."""
    state = load_state(directory)
    node = _find(state, name)
    if _alive(node.get("pid")):
        raise BadRequest(f"{name} is already running (pid {node['pid']})")
    pid = _spawn(node)
    _wait_ready(node, pid)
    node["pid"] = pid
    save_state(directory, state)
    return {"started": name, "pid": pid}


def down(directory: Path) -> dict:
    """Stop every node with SIGTERM (SIGKILL after 5 s)."""
    state = load_state(directory)
    pids = [n["pid"] for n in state["nodes"] if _alive(n.get("pid"))]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for node in state["nodes"]:
        node["pid"] = None
    save_state(directory, state)
    return {"stopped": len(pids)}
