"""Run one task in a child process with resource limits, a wall clock and a clean room.

The child (``python -m core.delegation.child``) starts in its own session
(process group), with a scrubbed environment, in a temporary directory that is
removed afterwards. Its rlimits bound CPU time, address space, file size and
open files; the wall-clock limit kills the whole process group, grandchildren
included. Input and output are msgpack (never pickle); the reply is capped.

Cost comes from the child's own ``getrusage`` (self + its children) in its
reply, so concurrent tasks never blur each other's numbers, as deltas of the
parent's RUSAGE_CHILDREN would. A child killed before it replies is sampled
from /proc just before the kill.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import psutil

from core.delegation.encoding import encode_result
from core.delegation.errors import (EXIT_ERRORS, MemoryLimitExceeded, TaskFailed,
                                    TaskTimedOut)
from core.delegation.limits import MiB, Limits
from core.errors import CoveyError

log = logging.getLogger("covey.delegation.runner")

CHILD_MODULE = "core.delegation.child"
STDERR_TAIL = 8 * 1024
_CHUNK = 64 * 1024
# The directory that holds the ``core`` package: the child's only PYTHONPATH entry.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Cost:
    """What a run used: CPU seconds (child and its children), wall seconds, peak RSS."""
    cpu_seconds: float
    wall_seconds: float
    peak_rss_mb: float

    def to_dict(self) -> dict:
        return {"cpu_seconds": round(self.cpu_seconds, 6), "wall_seconds": round(self.wall_seconds, 6),
                "peak_rss_mb": round(self.peak_rss_mb, 3)}


@dataclass
class RunResult:
    """The outcome of one run: ``status`` is "ok" or the code of ``error``."""
    task_type: str
    status: str
    result: dict | None
    error: CoveyError | None
    started: float          # unix time the child was started
    ended: float            # unix time it was gone
    cost: Cost
    exit_code: int | None   # negative: killed by that signal
    stderr_tail: str
    result_bytes: bytes | None = None   # the result encoded (encode_result), when already done

    def raise_for_status(self) -> dict:
        """The result, or raise the typed error that ended the run."""
        if self.error is not None:
            raise self.error
        if self.result is None:   # never so: a run without an error has a result (run_task, run_inline)
            raise TaskFailed(f"task {self.task_type} ended without a result")
        return self.result


def child_env(workdir: str) -> dict[str, str]:
    """The whole environment of a child: nothing inherited but the interpreter's location."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": workdir, "TMPDIR": workdir, "PYTHONPATH": _ROOT,
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[var] = "1"
    return env


class _Overflow(Exception):
    """The child wrote more than the output cap."""


class _Streams:
    """Feeds stdin, collects capped stdout and the tail of stderr."""

    def __init__(self, proc, payload: bytes, cap: int):
        self.proc, self.payload, self.cap = proc, payload, cap
        self.out, self.err = bytearray(), bytearray()
        self.overflow = False

    async def feed(self) -> None:
        try:
            self.proc.stdin.write(self.payload)
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("task child closed its input early (it will say why on exit)")
        finally:
            self.proc.stdin.close()

    async def read_out(self) -> None:
        while chunk := await self.proc.stdout.read(_CHUNK):
            self.out += chunk
            if len(self.out) > self.cap:
                raise _Overflow()

    async def read_err(self) -> None:
        while chunk := await self.proc.stderr.read(_CHUNK):
            self.err += chunk
            del self.err[:-STDERR_TAIL]

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for job in (self.feed(), self.read_out(), self.read_err(), self.proc.wait()):
                    tg.create_task(job)
        except* _Overflow:
            self.overflow = True


def _sample(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process and its reaped children, from /proc."""
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        cpu = t.user + t.system + t.children_user + t.children_system
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            hwm = next((line.split()[1] for line in fh if line.startswith("VmHWM:")), "0")
        return cpu, int(hwm) / 1024
    except (psutil.Error, OSError, ValueError):
        return 0.0, 0.0


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        log.debug("process group %d already gone", pgid)


def _error_for(kind: str, limits: Limits, streams: _Streams, returncode: int | None,
               timed_out: bool, overflow: bool) -> tuple[dict | None, CoveyError | None, dict]:
    """(result, error, rusage) read from how the child ended."""
    if timed_out:
        return None, TaskTimedOut(f"task {kind} timed out after {limits.wall_seconds:g} s "
                                  f"(wall-clock limit); its process group was killed",
                                  timeout=limits.wall_seconds), {}
    if overflow:
        return None, TaskFailed(f"task {kind} wrote more than its output limit of "
                                f"{limits.output_bytes} bytes; it was killed"), {}
    reply: Any = None
    try:
        reply = msgpack.unpackb(bytes(streams.out), raw=False) if streams.out else None
    except (ValueError, msgpack.UnpackException):
        log.warning("task child sent an unreadable reply (%d bytes)", len(streams.out))
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return None, _died(kind, limits, returncode, streams), {}
    rusage = reply.get("rusage")
    if not isinstance(rusage, dict):
        rusage = {}
    if reply["ok"]:
        try:
            encode_result(reply.get("result"))
        except CoveyError as exc:
            return None, TaskFailed(f"task {kind} returned an unusable result: {exc}"), rusage
        return reply["result"], None, rusage
    code, message = str(reply.get("code"))[:40], str(reply.get("message"))[:2000]
    if code == "memory_limit":
        return None, MemoryLimitExceeded(f"task {kind} exceeded its memory limit of "
                                         f"{limits.memory_bytes // MiB} MiB ({message})",
                                         limit_mb=limits.memory_bytes // MiB), rusage
    if code == "file_size_limit":
        return None, TaskFailed(f"task {kind} exceeded its file size limit of {limits.file_bytes} "
                                f"bytes"), rusage
    return None, EXIT_ERRORS.get(code, TaskFailed)(f"task {kind} failed: {message}"), rusage


def _died(kind: str, limits: Limits, returncode: int | None, streams: _Streams) -> CoveyError:
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return TaskTimedOut(f"task {kind} exceeded its CPU time limit of {limits.cpu_seconds} s",
                                timeout=limits.cpu_seconds)
        if sig == signal.SIGKILL:  # ours come only after a timeout or overflow, handled above
            return TaskFailed(f"task {kind} was killed (SIGKILL): its hard CPU limit of "
                              f"{limits.cpu_seconds + 1} s, or the system (out of memory?)")
        if sig == signal.SIGXFSZ:
            return TaskFailed(f"task {kind} exceeded its file size limit of {limits.file_bytes} bytes")
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        return TaskFailed(f"task {kind} died with signal {name}")
    tail = bytes(streams.err[-500:]).decode("utf-8", "replace").strip()
    return TaskFailed(f"task {kind} exited with status {returncode} without a result"
                      + (f": {tail}" if tail else ""))


async def run_task(kind: str, args: dict, limits: Limits, *, context: dict | None = None,
                   child_module: str = CHILD_MODULE) -> RunResult:
    """Run task ``kind`` with checked ``args`` in a fresh limited child; never raises for the
    task's own failures (they are in ``RunResult.error``)."""
    payload = msgpack.packb({"type": kind, "args": args, "context": context or {}}, use_bin_type=True)
    workdir = tempfile.mkdtemp(prefix="covey-task-")
    started, t0 = time.time(), time.monotonic()
    timed_out = False
    sample = (0.0, 0.0)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-s", "-P", "-m", child_module, json.dumps(limits.to_dict()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=workdir, env=child_env(workdir),
            start_new_session=True)
        streams = _Streams(proc, payload, limits.output_bytes)
        try:
            async with asyncio.timeout(limits.wall_seconds):
                await streams.run()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                sample = _sample(proc.pid)
            _kill_group(proc.pid)  # also when the child is gone: grandchildren may remain
            await asyncio.wait_for(proc.wait(), 10)
        wall = time.monotonic() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result, error, rusage = _error_for(kind, limits, streams, proc.returncode, timed_out,
                                       streams.overflow)
    cpu = rusage.get("cpu_seconds", sample[0])
    peak = rusage.get("peak_rss_kb", sample[1] * 1024) / 1024
    return RunResult(task_type=kind, status="ok" if error is None else error.code, result=result,
                     error=error, started=started, ended=time.time(),
                     cost=Cost(float(cpu), wall, float(peak)), exit_code=proc.returncode,
                     stderr_tail=bytes(streams.err).decode("utf-8", "replace"))


def run_inline(kind, args: dict, context: dict | None = None, *, checked: bool = False) -> RunResult:
    """Run a non-isolated task type (``TaskType.isolated`` False) in this process.

    Only for types that compute nothing from their input; CPU is this thread's
    time, and peak RSS is not measured (0). ``checked``: ``args`` are the type's check's
    output already (an opened request's), not checked again.
    """
    started, t0, c0 = time.time(), time.perf_counter(), time.thread_time()
    result, error = None, None
    try:
        result = kind.run(args if checked else kind.check(args), context or {})
        result_bytes = encode_result(result)
    except CoveyError as exc:
        result, error, result_bytes = None, exc, None
    cost = Cost(time.thread_time() - c0, time.perf_counter() - t0, 0.0)
    return RunResult(task_type=kind.name, status="ok" if error is None else error.code, result=result,
                     error=error, started=started, ended=time.time(), cost=cost, exit_code=None,
                     stderr_tail="", result_bytes=result_bytes)
