"""`covey cluster`: a local multi-process federation for trying things out.

Each node is a `covey --headless` process with its own home under the
cluster directory, listening on 127.0.0.1. ``cluster.json`` in that
directory records names, roles, homes, ports and pids (written as each node
starts, so ``down`` finds every process even after a failed ``up``);
``status``, ``kill``, ``start`` and ``down`` work from any later shell.

`up` starts the nodes a few at a time (a node is up when its control API
and its ``/health`` answer), then has each node add the peers it dials (key
pinned, trusted CORE), trusts each inbound peer on the accepting side as it
appears in that node's peer book, and waits until every link is connected.
All waits have deadlines that grow with the cluster; progress goes to stderr;
a failure stops every node it started and says what was missing.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TextIO

from core.app import cluster_plan
from core.app.client import call
from core.errors import BadRequest, CoveyError, NotRunning, TimedOut
from core.identity import ensure_identity

STATE_FILE = "cluster.json"
START_TIMEOUT = 60.0        # per node, from spawn to /health answering (a loaded 2-core machine)
WIRE_TIMEOUT_PER_LINK = 0.5  # seconds added to the wiring deadline per link ...
WIRE_TIMEOUT_MIN = 60.0      # ... on top of this
STOP_GRACE = 5.0            # SIGTERM -> SIGKILL
CONTROL_THREADS = 6         # control calls in flight during wiring and status

Progress = Callable[[str], None]


def _progress_to(stream: TextIO | None) -> Progress:
    def say(text: str) -> None:
        if stream is not None:
            print(f"cluster: {text}", file=stream, flush=True)
    return say


def start_batch() -> int:
    """Nodes started at once: importing the stack is CPU-bound, so about two per core."""
    return max(2, 2 * (os.cpu_count() or 1))


# -- the state file ------------------------------------------------------------------
def _state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def load_state(directory: Path) -> dict:
    try:
        state = json.loads(_state_path(directory).read_text())
    except FileNotFoundError:
        raise NotRunning(f"no cluster in {directory}: create one with `covey cluster up --nodes N`") from None
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{_state_path(directory)} is unreadable ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("nodes"), list):
        raise BadRequest(f"{_state_path(directory)} is not a cluster state file")
    return state


def save_state(directory: Path, state: dict) -> None:
    tmp = _state_path(directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, _state_path(directory))


# -- processes -----------------------------------------------------------------------
def _process(node: dict):
    """The node's live process (psutil), or None; a pid reused by another process is not it."""
    import psutil
    pid = node.get("pid")
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if node.get("started") is not None and abs(proc.create_time() - node["started"]) > 1.0:
            return None
        return proc
    except psutil.Error:
        return None


def _alive(node: dict) -> bool:
    return _process(node) is not None


def _node_config(home: Path, nodes: int) -> None:
    """Settings of a loopback cluster node: no LAN discovery; every peer arrives from
    127.0.0.1, so the per-address budget for not-yet-trusted peers must fit the cluster."""
    config = {"discovery": False, "unknown_per_minute": max(30, 4 * nodes),
              "max_unknown_connections": max(32, 2 * nodes)}
    path = home / "config.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    path.write_text(json.dumps({**current, **config}, indent=2))


def _spawn(node: dict) -> None:
    """Start the node's process in its own session (its process group is its pid)."""
    import psutil
    home = Path(node["home"])
    env = dict(os.environ)
    env.setdefault("COVEY_DISCOVERY", "0")
    # In a PyInstaller bundle the executable is `covey` itself.
    command = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "desktop.launcher"]
    with open(home / "node.log", "ab") as log:
        proc = subprocess.Popen(
            [*command, "--home", str(home), "--headless",
             "--listen", f"127.0.0.1:{node.get('port') or 0}"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    node["pid"] = proc.pid
    try:
        node["started"] = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        node["started"] = None


def _health(port: int, timeout: float = 5.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _log_tail(node: dict) -> str:
    try:
        lines = (Path(node["home"]) / "node.log").read_text(errors="replace").splitlines()[-3:]
    except OSError:
        return "no log"
    return " | ".join(lines) or "empty log"


def _up_check(node: dict) -> bool:
    """True when the node answers on its control API and on /health (records its port);
    CoveyError when its process has exited."""
    if not _alive(node):
        raise CoveyError(f"node {node['name']} exited during start: {_log_tail(node)}")
    home = Path(node["home"])
    try:
        control = json.loads((home / "control.json").read_text())
        if control.get("pid") != node["pid"]:
            return False
        info = call(home, "id", {}, timeout=10)
    except (OSError, ValueError, CoveyError):
        return False  # not up yet
    node["port"] = int(info["listen"][0].rsplit(":", 1)[1])
    return _health(node["port"])


def _start_all(directory: Path, state: dict, todo: list[dict], say: Progress) -> None:
    """Start ``todo`` a batch at a time (a sliding window); each must be up within START_TIMEOUT."""
    waiting: dict[str, float] = {}   # name -> deadline
    queue, started, t0 = list(todo), 0, time.monotonic()
    window = start_batch()
    while queue or waiting:
        while queue and len(waiting) < window:
            node = queue.pop(0)
            _spawn(node)
            waiting[node["name"]] = time.monotonic() + START_TIMEOUT
            save_state(directory, state)
        for node in todo:
            if node["name"] not in waiting:
                continue
            if _up_check(node):
                del waiting[node["name"]]
                started += 1
                if started % window == 0 or started == len(todo):
                    say(f"{started}/{len(todo)} nodes up ({time.monotonic() - t0:.1f} s)")
            elif time.monotonic() > waiting[node["name"]]:
                raise TimedOut(f"node {node['name']} did not answer on /health within {START_TIMEOUT:.0f} s "
                               f"(log: {_log_tail(node)})")
        time.sleep(0.05)
    save_state(directory, state)


# -- wiring --------------------------------------------------------------------------
def _dial_all(nodes: dict[str, dict], planned: list[cluster_plan.PlannedNode], say: Progress) -> None:
    """Each node adds (key pinned) and trusts the peers it dials; nodes in parallel."""
    def dial(item: cluster_plan.PlannedNode) -> None:
        home = Path(nodes[item.name]["home"])
        for target in item.dials:
            peer = nodes[target]
            call(home, "peers.add", {"address": f"127.0.0.1:{peer['port']}", "key": peer["id"],
                                     "name": peer["name"]}, timeout=60)
            call(home, "peers.trust", {"peer": peer["id"], "tier": "core"}, timeout=60)

    with ThreadPoolExecutor(CONTROL_THREADS) as pool:
        list(pool.map(dial, [p for p in planned if p.dials]))
    say(f"{sum(len(p.dials) for p in planned)} links dialled")


def _wait_connected(nodes: dict[str, dict], planned: list[cluster_plan.PlannedNode], say: Progress) -> None:
    """Poll every node's peer book until each expected peer is there and connected; trust
    inbound ones (CORE) as they appear. Raises TimedOut naming the missing links."""
    expected = cluster_plan.neighbours(planned)
    by_id = {n["id"]: name for name, n in nodes.items()}
    links = sum(len(p.dials) for p in planned)
    deadline = time.monotonic() + WIRE_TIMEOUT_MIN + WIRE_TIMEOUT_PER_LINK * links
    missing: dict[str, set[str]] = {name: set(peers) for name, peers in expected.items() if peers}
    last = -1

    def check(name: str) -> set[str]:
        home = Path(nodes[name]["home"])
        rows = {}
        for row in call(home, "peers.list", {}, timeout=30):
            peer = by_id.get(row["id"])
            if peer in expected[name]:
                if row["tier"] != "core":  # an inbound peer, now in the book: trust it
                    row = {**call(home, "peers.trust", {"peer": row["id"], "tier": "core"}, timeout=30),
                           "connected": row["connected"]}
                rows[peer] = row
        return {peer for peer in expected[name]
                if peer not in rows or not rows[peer]["connected"] or rows[peer]["tier"] != "core"}

    with ThreadPoolExecutor(CONTROL_THREADS) as pool:
        while missing:
            names = list(missing)
            for name, left in zip(names, pool.map(check, names), strict=True):
                if left:
                    missing[name] = left
                else:
                    del missing[name]
            pending = sum(len(v) for v in missing.values()) // 2
            if pending != last:
                say(f"{links - min(pending, links)}/{links} links connected and trusted")
                last = pending
            if not missing:
                return
            if time.monotonic() > deadline:
                sample = "; ".join(f"{name} lacks {', '.join(sorted(left))}" for name, left in
                                   sorted(missing.items())[:5])
                raise TimedOut(f"{len(missing)} node(s) not fully connected after the wiring deadline: {sample}")
            time.sleep(0.5)


# -- commands --------------------------------------------------------------------------
def up(directory: Path, nodes: int, topology: str = "seed", progress: TextIO | None = sys.stderr) -> dict:
    """Create N nodes of ``topology`` (see core.app.cluster_plan), start them, wire them,
    wait until every link is connected and trusted; on any failure stop them all."""
    cluster_plan.check(nodes, topology)
    say = _progress_to(progress)
    directory.mkdir(parents=True, exist_ok=True)
    if _state_path(directory).exists():
        old = load_state(directory)
        if any(_alive(n) for n in old["nodes"]):
            raise BadRequest(f"a cluster is already running in {directory}: `covey cluster down` first")
    planned = cluster_plan.plan(nodes, topology)
    state: dict = {"topology": topology, "nodes": []}
    for item in planned:
        home = directory / item.name
        identity, _ = ensure_identity(home, item.name)
        _node_config(home, nodes)
        state["nodes"].append({"name": item.name, "home": str(home), "id": identity.id, "role": item.role,
                               "group": item.group, "port": 0, "pid": None, "started": None})
    save_state(directory, state)
    t0 = time.monotonic()
    say(f"starting {nodes} nodes ({topology}), {start_batch()} at a time")
    try:
        _start_all(directory, state, state["nodes"], say)
        by_name = {n["name"]: n for n in state["nodes"]}
        _dial_all(by_name, planned, say)
        _wait_connected(by_name, planned, say)
    except BaseException as exc:
        say(f"failed ({exc}); stopping the nodes it started")
        down(directory)
        raise
    say(f"up and connected in {time.monotonic() - t0:.1f} s")
    return status(directory)


def _row(node: dict) -> dict:
    row = {"name": node["name"], "role": node["role"], "id": node["id"],
           "address": f"127.0.0.1:{node['port']}", "peers": 0, "state": "stopped",
           "pid": node.get("pid") or 0, "rss_mb": 0.0}
    if node.get("group") is not None:
        row["group"] = node["group"]
    proc = _process(node)
    if proc is not None:
        import psutil
        row["state"] = "running"
        try:
            row["rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
            row["peers"] = sum(p["connected"] for p in call(Path(node["home"]), "peers.list", {}, timeout=10))
        except (CoveyError, psutil.Error) as exc:
            row["state"] = f"unresponsive ({exc})"
    return row


def status(directory: Path) -> dict:
    """Every node: name, role, id, address, connected peers, state, pid, RSS."""
    state = load_state(directory)
    with ThreadPoolExecutor(CONTROL_THREADS) as pool:
        return {"topology": state.get("topology"), "nodes": list(pool.map(_row, state["nodes"]))}


def _find(state: dict, name: str) -> dict:
    for node in state["nodes"]:
        if node["name"] == name:
            return node
    raise BadRequest(f"no node {name!r} in this cluster: {', '.join(n['name'] for n in state['nodes'])}")


def kill(directory: Path, name: str, *more: str) -> dict:
    """SIGKILL nodes (to see the others cope), all at once."""
    import psutil
    state = load_state(directory)
    procs = [p for n in [_find(state, x) for x in (name, *more)] if (p := _process(n)) is not None]
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass  # gone already: the wanted outcome
    psutil.wait_procs(procs, timeout=STOP_GRACE)
    return {"killed": name} if not more else {"killed": [name, *more]}


def start(directory: Path, name: str, *more: str) -> dict:
    """Start stopped nodes again on their old ports (a batch at a time), so their peers reconnect."""
    state = load_state(directory)
    nodes = [_find(state, x) for x in (name, *more)]
    for node in nodes:
        if _alive(node):
            raise BadRequest(f"{node['name']} is already running (pid {node['pid']})")
    _start_all(directory, state, nodes, _progress_to(None))
    if not more:
        return {"started": name, "pid": nodes[0]["pid"]}
    return {"started": [n["name"] for n in nodes], "pids": [n["pid"] for n in nodes]}


def down(directory: Path) -> dict:
    """Stop every node: SIGTERM, then SIGKILL to its whole process group after STOP_GRACE;
    checked with psutil that none is left."""
    import psutil
    state = load_state(directory)
    procs = {n["name"]: p for n in state["nodes"] if (p := _process(n)) is not None}
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.Error:
            pass  # already gone
    _, alive = psutil.wait_procs(list(procs.values()), timeout=STOP_GRACE)
    for proc in alive:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the node's session: it and anything it started
        except OSError:
            proc.kill()
    _, left = psutil.wait_procs(alive, timeout=STOP_GRACE)
    groups = [p.pid for p in procs.values()]
    for pgid in groups:  # anything a node started in its session (a task's child process)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # no such group left: the wanted outcome
    survivors = [p.pid for p in left] + sorted(set(groups) & _live_groups())
    if survivors:
        raise CoveyError(f"node process(es) survived SIGKILL: {sorted(set(survivors))}")
    for node in state["nodes"]:
        node["pid"], node["started"] = None, None
    save_state(directory, state)
    return {"stopped": len(procs), "killed": len(alive)}



def _live_groups() -> set[int]:
    """The process groups that hold a live (non-zombie) process."""
    import psutil
    out = set()
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                out.add(os.getpgid(proc.pid))
        except (OSError, psutil.Error):
            continue
    return out
