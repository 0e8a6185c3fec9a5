"""Task delegation costs against floors measured in the same run. Prints JSON.

- ``echo`` through the runner (a fresh limited child per task) against the
  bare start of the same interpreter (``python -s -P -c pass``, same asyncio
  subprocess call): the runner's overhead over process start-up.
- The whole executor path (build + open the signed request, admission, run,
  sign the proof, verify it) for ``echo``, which runs inline (``isolated``
  False: it computes nothing from its input), in microseconds, against the
  same raw Ed25519 floor as below.
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


def main() -> None:
    sigs = signatures()
    procs = asyncio.run(processes())
    # The inline echo path does 2 signatures + 2 verifications (request, proof) and a result
    # encode: compare it with one raw sign + verify pair.
    procs["executor_echo_inline_over_raw_sign_verify"] = round(
        procs["executor_echo_inline_verified"]["p50_ms"] / 1e3 / sigs.pop("raw_seconds"), 2)
    out = {"runs": RUNS, "processes": procs, "proof_signatures": sigs}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
