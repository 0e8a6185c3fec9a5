"""Node transport against a bare aiohttp WebSocket, measured in the same run.

Prints one JSON document. Every target of issue 2 ("Speed") is a ratio
against a floor measured here, or an absolute budget:

- ``latency``: 100-byte request/reply between two nodes in the ``--mode`` chosen
  (default asymmetric; none and symmetric too, with a shared network key)
  (``node.request(peer, "echo", {"d": 100 bytes})``) against a bare aiohttp
  WebSocket echo of 100-byte binary frames; p50 <= 1.5x, p99 <= 3x.
- ``throughput_100b``: 100-byte messages one way (``node.send``) against
  ``ws.send_bytes`` of 100-byte frames; >= 0.5x the floor's rate.
- ``throughput_4mib``: 4 MiB messages one way against 4 MiB binary frames
  (``max_msg_size`` raised on both floor ends); >= 0.7x the floor's MB/s.
- ``connections``: dial + Noise XX handshake + "ready" + close, one after
  another; >= 200 per second.
- ``idle``: ``covey --headless`` processes (one hub with three peers added by
  ``covey peers add``): hub RSS < 80 MB with torch not loaded, and time from
  process start to ``/health`` answering 200 < 1.5 s.

Every server is a separate process (this file run with ``--serve floor`` or
``--serve node``) on 127.0.0.1; the client side runs in this process (a
plain aiohttp client for the floors, a started ``Node`` for the node
figures). Compression is off everywhere; discovery is off.

    .venv/bin/python bench/transport.py [--rtts 5000] [--small 50000] [--large 40] [--conns 300]
    .venv/bin/python bench/transport.py --uvloop     # both ends on uvloop, when installed
    .venv/bin/python bench/transport.py --mode symmetric --skip-idle   # or --mode none
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

SMALL = 100
LARGE = 4 << 20
FLOOR_MAX_MSG = LARGE + (1 << 20)
WARMUP = 500
TARGETS = {"latency_p50": 1.5, "latency_p99": 3.0, "throughput_100b": 0.5, "throughput_4mib": 0.7,
           "connections_per_s": 200, "idle_rss_mb": 80, "start_to_health_s": 1.5}


# -- servers (child processes) -------------------------------------------------------
async def serve_floor() -> None:
    """Bare aiohttp: /echo sends every binary frame back; /sink counts frames and
    answers a 1-byte frame with the count so far."""
    async def echo(request):
        ws = web.WebSocketResponse(compress=False, max_msg_size=FLOOR_MAX_MSG)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_bytes(msg.data)
        return ws

    async def sink(request):
        ws = web.WebSocketResponse(compress=False, max_msg_size=FLOOR_MAX_MSG)
        await ws.prepare(request)
        count = 0
        async for msg in ws:
            if len(msg.data) == 1:
                await ws.send_bytes(count.to_bytes(8, "big"))
            else:
                count += 1
        return ws

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/sink", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    await _announce({"port": port})


def node_settings(mode: str) -> dict:
    """Overrides of a bench node: loopback, no discovery, ``mode`` preferred and required."""
    return {"listen": "127.0.0.1:0", "discovery": False, "mode": mode, "min_mode": mode}


def make_home(home: Path, name: str, network_key: bytes | None) -> str:
    """A fresh identity in ``home`` (and the shared network key for symmetric mode) -> id."""
    from core.config import write_secret
    from core.identity import Identity
    from core.node import PSK_FILE
    home.mkdir()
    identity = Identity.generate(f"bench-{name}")
    identity.save(home)
    if network_key is not None:
        write_secret(home / PSK_FILE, network_key.hex().encode() + b"\n")
    return identity.id


async def serve_node(home: str, mode: str, trusted: list[str]) -> None:
    """A Node with a sync ``echo`` handler, a counting ``sink`` and ``flush``
    (replies with the sink count); ``trusted`` ids are CORE peers."""
    from core.node import Node
    node = Node.open(Path(home), node_settings(mode))
    await node.start()
    for peer_id in trusted:
        node.peers.add_or_update(peer_id, name="bench", source="manual")
        node.peers.set_tier(peer_id, "core")
    count = 0

    def sink(peer, body):
        nonlocal count
        count += 1

    node.on_message("echo", lambda peer, body: body)
    node.on_message("sink", sink)
    node.on_message("flush", lambda peer, body: {"n": count})
    try:
        await _announce({"port": node.transport.port, "id": node.identity.id})
    finally:
        await node.stop()


async def _announce(info: dict) -> None:
    """Print where we listen, then serve until stdin closes (the parent exits or says so)."""
    print(json.dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


# -- helpers ----------------------------------------------------------------------------
def _python_cmd(use_uvloop: bool) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve())] + (["--uvloop"] if use_uvloop else [])


def _env() -> dict:
    return {**os.environ, "COVEY_DISCOVERY": "0", "PYTHONPATH": str(ROOT)}


def start_server(args: list[str], use_uvloop: bool) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(_python_cmd(use_uvloop) + ["--serve"] + args, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=_env(), text=True)
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"server {args[0]} did not start (exit {proc.wait(10)})")
    return proc, json.loads(line)


def stop_server(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {"p50_us": round(pick(0.50) * 1e6, 1), "p90_us": round(pick(0.90) * 1e6, 1),
            "p99_us": round(pick(0.99) * 1e6, 1), "mean_us": round(statistics.fmean(s) * 1e6, 1),
            "n": len(s)}


class Ends:
    """One side of the comparison: ``echo()`` is one round trip, ``send(big)`` one
    message one way, ``flush()`` the count of one-way messages received so far."""

    async def echo(self) -> None: ...
    async def send(self, big: bool) -> None: ...
    async def flush(self) -> int: ...

    async def rtts(self, n: int) -> list[float]:
        clock, echo, out = time.perf_counter, self.echo, []
        for _ in range(n):
            t0 = clock()
            await echo()
            out.append(clock() - t0)
        return out

    async def one_way(self, big: bool, n: int) -> float:
        """Seconds from the first send until the server has received all ``n``."""
        before = await self.flush()
        send = self.send
        t0 = time.perf_counter()
        for _ in range(n):
            await send(big)
        got = await self.flush() - before
        assert got == n, (got, n)
        return time.perf_counter() - t0


class FloorEnds(Ends):
    """Bare aiohttp client against the bare aiohttp server."""

    async def open(self, port: int) -> "FloorEnds":
        self.payload, self.big = os.urandom(SMALL), os.urandom(LARGE)
        self.session = aiohttp.ClientSession()
        kw = {"compress": 0, "max_msg_size": FLOOR_MAX_MSG}
        self.echo_ws = await self.session.ws_connect(f"http://127.0.0.1:{port}/echo", **kw)
        self.sink_ws = await self.session.ws_connect(f"http://127.0.0.1:{port}/sink", **kw)
        return self

    async def echo(self) -> None:
        await self.echo_ws.send_bytes(self.payload)
        await self.echo_ws.receive()

    async def send(self, big: bool) -> None:
        await self.sink_ws.send_bytes(self.big if big else self.payload)

    async def flush(self) -> int:
        await self.sink_ws.send_bytes(b"F")
        return int.from_bytes((await self.sink_ws.receive()).data, "big")

    async def close(self) -> None:
        await self.session.close()


class NodeEnds(Ends):
    """A started Node in this process connected to the node server process."""

    async def open(self, home: Path, server_id: str, port: int, mode: str) -> "NodeEnds":
        from core.node import Node
        self.node = Node.open(home, node_settings(mode))
        await self.node.start()
        conn = await self.node.dial(f"127.0.0.1:{port}", server_id)
        assert conn.mode == mode, conn.mode
        self.peer = server_id
        self.body, self.big = {"d": os.urandom(SMALL)}, {"d": os.urandom(LARGE)}
        return self

    async def echo(self) -> None:
        await self.node.request(self.peer, "echo", self.body)

    async def send(self, big: bool) -> None:
        await self.node.send(self.peer, "sink", self.big if big else self.body)

    async def flush(self) -> int:
        return (await self.node.request(self.peer, "flush", {}, timeout=120))["n"]

    async def close(self) -> None:
        await self.node.stop()


async def compare(ends: dict[str, Ends], rtts: int, small: int, large: int, rounds: int) -> dict:
    """Alternate floor and node in ``rounds`` blocks so load drift on a shared
    machine hits both alike; latency samples are pooled, rates are medians."""
    lat = {k: [] for k in ends}
    small_t = {k: [] for k in ends}
    large_t = {k: [] for k in ends}
    for e in ends.values():  # warm-up
        await e.rtts(WARMUP)
        await e.one_way(False, min(small, 5000))
        await e.one_way(True, 2)
    for _ in range(rounds):
        for k, e in ends.items():
            lat[k] += await e.rtts(max(1, rtts // rounds))
            small_t[k].append(await e.one_way(False, max(1, small // rounds)))
            large_t[k].append(await e.one_way(True, max(1, large // rounds)))
    out = {}
    for k in ends:
        n_small, n_large = max(1, small // rounds), max(1, large // rounds)
        out[k] = {"latency": percentiles(lat[k]),
                  "msgs_per_s": round(n_small / statistics.median(small_t[k])),
                  "mb_per_s": round(n_large * LARGE / statistics.median(large_t[k]) / 1e6, 1)}
    return out


async def connection_rate(dialer_home: Path, server_id: str, port: int, n: int, mode: str,
                          network_key: bytes | None) -> dict:
    """Sequential dial + handshake + close with a bare Transport (no listen port is
    advertised, so the server does not keep a reconnecting link back to us)."""
    from core.config import Settings
    from core.net.handshake import LocalEndpoint
    from core.identity import Identity
    from core.net.transport import Transport
    settings = Settings(**node_settings(mode))
    local = LocalEndpoint.create(Identity.load(dialer_home), settings.mode, settings.min_mode, network_key)
    transport = Transport(local, settings, admit=lambda peer, host: None,
                          on_connection=None, health=dict)
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(20):
            conn = await transport.dial(address, server_id)
            await conn.close()
        t0 = time.perf_counter()
        for _ in range(n):
            conn = await transport.dial(address, server_id)
            await conn.close()
        elapsed = time.perf_counter() - t0
    finally:
        await transport.stop()
    return {"per_s": round(n / elapsed, 1), "n": n, "ms_each": round(elapsed / n * 1e3, 2)}


# -- idle headless processes ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _torch_loaded(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps or "/torch/" in maps


def _covey() -> list[str]:
    exe = Path(sys.executable).with_name("covey")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "core.app.cli"]


async def idle_figures(base: Path, peers: int = 3) -> dict:
    """Start a hub and ``peers`` nodes with ``covey --headless``, time each start to
    /health 200, connect the peers to the hub with ``covey peers add``, idle, read RSS."""
    procs: list[subprocess.Popen] = []
    starts: list[float] = []
    homes, ports = [], []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(peers + 1):
                home, port = base / f"idle{i}", _free_port()
                homes.append(home)
                ports.append(port)
                t0 = time.perf_counter()
                procs.append(subprocess.Popen(
                    _covey() + ["--home", str(home), "--headless", "--listen", f"127.0.0.1:{port}",
                                "--log-level", "warning"], env=_env(), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                starts.append(await _wait_health(session, port, t0, procs[-1]))
        for i in range(1, peers + 1):
            out = subprocess.run(_covey() + ["--home", str(homes[i]), "peers", "add",
                                             f"127.0.0.1:{ports[0]}", "--json"],
                                 env=_env(), capture_output=True, text=True, timeout=30)
            if out.returncode:
                raise RuntimeError(f"peers add failed: {out.stderr.strip()}")
        listed = subprocess.run(_covey() + ["--home", str(homes[0]), "peers", "list", "--json"],
                                env=_env(), capture_output=True, text=True, timeout=30)
        connected = sum(1 for p in json.loads(listed.stdout) if p.get("connected"))
        await asyncio.sleep(3.0)  # idle
        hub = procs[0].pid
        return {"hub_rss_mb": round(_rss_mb(hub), 1), "hub_connected_peers": connected,
                "peer_rss_mb": [round(_rss_mb(p.pid), 1) for p in procs[1:]],
                "torch_loaded": any(_torch_loaded(p.pid) for p in procs),
                "start_to_health_s": [round(s, 3) for s in starts],
                "start_to_health_max_s": round(max(starts), 3)}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


async def _wait_health(session: aiohttp.ClientSession, port: int, t0: float, proc) -> float:
    deadline, last = t0 + 30, None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"covey --headless exited with {proc.returncode}")
        try:
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                if resp.status == 200:
                    return time.perf_counter() - t0
        except aiohttp.ClientError as exc:  # not listening yet: poll again
            last = exc
        await asyncio.sleep(0.005)
    raise RuntimeError(f"/health did not answer within 30 s ({last})")


# -- main ------------------------------------------------------------------------------
async def run(opts) -> dict:
    base = Path(tempfile.mkdtemp(prefix="covey-bench-"))
    network_key = os.urandom(32) if opts.mode == "symmetric" else None
    try:
        homes = {name: base / name for name in ("server", "client", "dialer")}
        ids = {name: make_home(home, name, network_key) for name, home in homes.items()}
        floor_proc, floor_info = start_server(["floor"], opts.uvloop)
        node_proc, node_info = start_server(["node", str(homes["server"]), opts.mode, ids["client"],
                                             ids["dialer"]], opts.uvloop)
        try:
            ends = {"floor": await FloorEnds().open(floor_info["port"]),
                    "node": await NodeEnds().open(homes["client"], node_info["id"], node_info["port"],
                                                  opts.mode)}
            try:
                figures = await compare(ends, opts.rtts, opts.small, opts.large, opts.rounds)
            finally:
                for e in ends.values():
                    await e.close()
            conns = await connection_rate(homes["dialer"], node_info["id"], node_info["port"], opts.conns,
                                          opts.mode, network_key)
        finally:
            stop_server(floor_proc)
            stop_server(node_proc)
        floor, node = figures["floor"], figures["node"]
        idle = await idle_figures(base) if not opts.skip_idle else None
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return report(floor, node, conns, idle, opts)


def report(floor: dict, node: dict, conns: dict, idle: dict | None, opts) -> dict:
    r = lambda x: round(x, 3)  # noqa: E731
    ratios = {
        "latency_p50": r(node["latency"]["p50_us"] / floor["latency"]["p50_us"]),
        "latency_p99": r(node["latency"]["p99_us"] / floor["latency"]["p99_us"]),
        "throughput_100b": r(node["msgs_per_s"] / floor["msgs_per_s"]),
        "throughput_4mib": r(node["mb_per_s"] / floor["mb_per_s"]),
    }
    holds = {
        "latency_p50": ratios["latency_p50"] <= TARGETS["latency_p50"],
        "latency_p99": ratios["latency_p99"] <= TARGETS["latency_p99"],
        "throughput_100b": ratios["throughput_100b"] >= TARGETS["throughput_100b"],
        "throughput_4mib": ratios["throughput_4mib"] >= TARGETS["throughput_4mib"],
        "connections_per_s": conns["per_s"] >= TARGETS["connections_per_s"],
    }
    if idle is not None:
        holds["idle_rss_mb"] = idle["hub_rss_mb"] < TARGETS["idle_rss_mb"] and not idle["torch_loaded"]
        holds["start_to_health_s"] = idle["start_to_health_max_s"] < TARGETS["start_to_health_s"]
    return {"bench": "transport", "python": sys.version.split()[0],
            "loop": "uvloop" if opts.uvloop else "asyncio",
            "params": {"rtts": opts.rtts, "small_msgs": opts.small, "large_msgs": opts.large,
                       "small_bytes": SMALL, "large_bytes": LARGE, "conns": opts.conns, "rounds": opts.rounds,
                       "mode": opts.mode},
            "floor": floor, "node": node, "connections": conns, "idle": idle,
            "ratios": ratios, "targets": TARGETS, "holds": holds, "all_hold": all(holds.values())}


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        raise SystemExit("--uvloop needs uvloop: .venv/bin/pip install uvloop") from None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtts", type=int, default=5000, help="timed round trips (after 500 warm-up)")
    p.add_argument("--small", type=int, default=50000, help="100-byte messages one way")
    p.add_argument("--large", type=int, default=40, help="4 MiB messages one way")
    p.add_argument("--conns", type=int, default=300, help="sequential new connections")
    p.add_argument("--rounds", type=int, default=5, help="floor/node alternations")
    p.add_argument("--skip-idle", action="store_true", help="skip the covey --headless RSS/start part")
    p.add_argument("--uvloop", action="store_true", help="run both ends on uvloop")
    p.add_argument("--mode", choices=("none", "asymmetric", "symmetric"), default="asymmetric",
                   help="encryption mode of both nodes (symmetric: a shared network key)")
    p.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.uvloop:
        _install_uvloop()
    if opts.serve:
        kind, rest = opts.serve[0], opts.serve[1:]
        asyncio.run(serve_floor() if kind == "floor" else serve_node(rest[0], rest[1], rest[2:]))
        return
    print(json.dumps(asyncio.run(run(opts)), indent=2))


if __name__ == "__main__":
    main()
