"""Task delegation costs against floors measured in the same run. Prints JSON.

- ``echo`` through the runner (a fresh limited child per task) against the
  bare start of the same interpreter (``python -s -P -c pass``, same asyncio
  subprocess call): the runner's overhead over process start-up.
- The whole executor path (build + open the signed request, admission, run,
  sign the proof, verify it) for ``echo``, which runs inline (``isolated``
  False: it computes nothing from its input), in microseconds, against the
  same raw Ed25519 floor as below.
- An ``echo`` task round trip between two real nodes on 127.0.0.1 (``covey tasks run``'s
  path: build and sign the request, send it over the encrypted link, admission, run, sign the
  proof, verify it, record both sides in SQLite), over the link and over ``POST /tasks``,
  against the same nodes' plain request latency (``ping``) measured interleaved in the same
  run, once with both nodes in one event loop and once with the executor in its own process
  (as two nodes are deployed). Target: link p50 at most 3x the ping p50.
- Signing + verifying an execution proof (statement checks, canonical JSON,
  PAE, base64, one Ed25519 sign and verify) against a raw Ed25519 sign +
  verify of the same payload bytes.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.delegation.encoding import canonical_json, encode_result, sha256_hex  # noqa: E402
from core.delegation.executor import Executor  # noqa: E402
from core.delegation.proofs import make_statement, sign_proof, verify_proof  # noqa: E402
from core.delegation.request import build_request, open_request  # noqa: E402
from core.delegation.runner import child_env, run_task  # noqa: E402
from core.delegation.tasks import TASK_TYPES  # noqa: E402
from core.identity import Identity, verify  # noqa: E402
from core.signed import Verifier  # noqa: E402

RUNS = 30
SIGN_ROUNDS = 2000
LINK_RUNS = 200
LINK_TARGET = 3.0


def pct(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"p50_ms": round(statistics.median(s) * 1e3, 2), "p90_ms": round(s[int(0.9 * (len(s) - 1))] * 1e3, 2)}


async def bare_start() -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-s", "-P", "-c", "pass",
                                                env=child_env("/tmp"), start_new_session=True)
    await proc.wait()
    return time.perf_counter() - t0


async def runner_echo() -> float:
    t0 = time.perf_counter()
    res = await run_task("echo", {"text": "x" * 100}, TASK_TYPES["echo"].limits)
    assert res.status == "ok", res.error
    return time.perf_counter() - t0


async def executor_echo(requester, executor, verifier) -> float:
    t0 = time.perf_counter()
    sent = build_request(requester, "echo", {"text": "x" * 100})
    served = await executor.execute(open_request(verifier, sent.envelope))
    verify_proof(served.proof, executor=executor.identity.id, request_digest=sent.digest,
                 result_bytes=served.result_bytes)
    return time.perf_counter() - t0


async def processes() -> dict:
    requester, me = Identity.generate("r"), Identity.generate("e")
    executor, verifier = Executor(me, burst=10 ** 6, per_second=10 ** 6), Verifier()
    bare, run, full = [], [], []
    for _ in range(3):  # warm-up (imports, caches)
        await executor_echo(requester, executor, verifier)
    for _ in range(RUNS):  # interleaved, so load changes hit all three alike
        bare.append(await bare_start())
        run.append(await runner_echo())
        full.append(await executor_echo(requester, executor, verifier))
    floor = statistics.median(bare)
    return {"bare_python_start": pct(bare), "runner_echo": pct(run),
            "runner_over_bare_start": round(statistics.median(run) / floor, 2),
            "executor_echo_inline_verified": pct(full)}


def signatures() -> dict:
    requester, executor = Identity.generate("r"), Identity.generate("e")
    result = encode_result({"text": "x" * 100, "length": 100})
    digest = sha256_hex(b"request")
    st = make_statement(task="ab" * 16, type="echo", request_digest=digest, executor=executor.id,
                        requester=requester.id, received=1.0, started=1.5, ended=2.0,
                        cost={"cpu_seconds": 0.03, "wall_seconds": 0.04, "peak_rss_mb": 17.7},
                        quality={}, exit={"status": "ok", "code": 0, "message": ""}, result_bytes=result)
    payload = canonical_json(st)
    t0 = time.perf_counter()
    for _ in range(SIGN_ROUNDS):
        verify(executor.id, payload, executor.sign(payload))
    raw = (time.perf_counter() - t0) / SIGN_ROUNDS
    t0 = time.perf_counter()
    for _ in range(SIGN_ROUNDS):
        verify_proof(sign_proof(executor, st), executor=executor.id, request_digest=digest,
                     result_bytes=result)
    proof = (time.perf_counter() - t0) / SIGN_ROUNDS
    return {"payload_bytes": len(payload), "raw_ed25519_sign_verify_us": round(raw * 1e6, 1),
            "proof_sign_verify_us": round(proof * 1e6, 1), "ratio": round(proof / raw, 2),
            "raw_seconds": raw}


async def _node(home, name: str):
    from core.config import Settings
    from core.node import Node
    Identity.generate(name).save(home)
    node = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await node.start()
    return node


def _unlimited(node) -> None:
    """The executor's per-peer rate limit (burst 4, 0.5/s) would refuse a benchmark."""
    from core.delegation.executor import RateLimit
    node.service("delegation").executor.rate = RateLimit(10 ** 6, 10 ** 6)


async def serve(home: str, requester: str) -> None:
    """The executor of the two-process measurement (``delegation.py serve HOME REQUESTER``):
    prints its port and id, trusts REQUESTER as CORE, runs until its stdin closes."""
    from pathlib import Path
    node = await _node(Path(home), "bob")
    node.peers.add_or_update(requester, name="alice", kept=True)
    node.trust(requester, "core")
    _unlimited(node)
    print(json.dumps({"port": node.transport.port, "id": node.identity.id}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await node.stop()


async def round_trips(alice, bob_id: str, bob=None) -> dict:
    """Ping, echo task over the link and over HTTP, interleaved; p50s and ratios to ping.

    Both sides record a task behind its answer, batched (``core.delegation.recorder``: one
    commit for the rows queued within 50 ms); alice's queued record is written after each
    measured round trip, outside it, so that it never runs inside the next measurement (it would
    slow the ping floor down). ``echo_task_link`` is what ``covey tasks run`` waits for (its
    record is written behind it); ``echo_task_link_recorded`` is the round trip plus a commit of
    the requester's row forced at once: the time until that record is on disk, as if every task
    paid its own commit. The executor in its own process writes its rows as the service does,
    batched, inside or between measurements."""
    tasks = alice.service("delegation")
    ping, link, recorded, http = [], [], [], []
    for i in range(LINK_RUNS + 10):
        t0 = time.perf_counter()
        await alice.request(bob_id, "ping", {})
        t1 = time.perf_counter()
        view = await tasks.run(bob_id, "echo", {"text": "x" * 100})
        t2 = time.perf_counter()
        tasks.flush()
        t3 = time.perf_counter()
        assert view["verified"], view
        if bob is not None:
            bob.service("delegation").flush()
        if i % 4 == 0:
            t4 = time.perf_counter()
            assert (await tasks.run(bob_id, "echo", {"text": "x" * 100}, http=True))["verified"]
            http.append(time.perf_counter() - t4)
            tasks.flush()
        if i >= 10:  # warm-up done
            ping.append(t1 - t0)
            link.append(t2 - t1)
            recorded.append(t3 - t1)
    http = http[3:]
    ratio = statistics.median(link) / statistics.median(ping)
    return {"runs": len(link), "ping": pct(ping), "echo_task_link": pct(link),
            "echo_task_link_recorded": pct(recorded), "echo_task_http": pct(http),
            "link_over_ping": round(ratio, 2),
            "recorded_over_ping": round(statistics.median(recorded) / statistics.median(ping), 2),
            "http_over_ping": round(statistics.median(http) / statistics.median(ping), 2),
            "target_link_over_ping": LINK_TARGET, "holds": ratio <= LINK_TARGET}


async def two_nodes(processes: bool) -> dict:
    """Echo round trips between two nodes (in this loop, or bob in its own process) vs their
    plain request latency."""
    import subprocess
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        alice = await _node(Path(tmp) / "alice", "alice")
        bob = proc = None
        try:
            if processes:
                proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve",
                                         str(Path(tmp) / "bob"), alice.identity.id],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                info = json.loads(await asyncio.to_thread(proc.stdout.readline))
                port, bob_id = info["port"], info["id"]
            else:
                bob = await _node(Path(tmp) / "bob", "bob")
                port, bob_id = bob.transport.port, bob.identity.id
            await alice.add_peer(f"127.0.0.1:{port}", name="bob")
            if bob is not None:
                while alice.identity.id not in bob.connections:
                    await asyncio.sleep(0.01)
                bob.trust(alice.identity.id, "core")
                _unlimited(bob)
            return await round_trips(alice, bob_id, bob)
        finally:
            await alice.stop()
            if bob is not None:
                await bob.stop()
            if proc is not None:
                proc.stdin.close()
                proc.wait(30)


def main() -> None:
    sigs = signatures()
    between = {"one_loop": asyncio.run(two_nodes(False)), "two_processes": asyncio.run(two_nodes(True))}
    procs = asyncio.run(processes())
    # The inline echo path does 2 signatures + 2 verifications (request, proof) and a result
    # encode: compare it with one raw sign + verify pair.
    procs["executor_echo_inline_over_raw_sign_verify"] = round(
        procs["executor_echo_inline_verified"]["p50_ms"] / 1e3 / sigs.pop("raw_seconds"), 2)
    out = {"runs": RUNS, "two_nodes": between, "processes": procs, "proof_signatures": sigs}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve(*sys.argv[2:4]))
    else:
        main()
