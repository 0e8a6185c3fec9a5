"""The executor: admits checked requests, runs them one child at a time, signs the proofs.

Admission is synchronous and decides before any memory or process is spent:
a per-peer token bucket (RateLimited, with the time to wait), a per-peer share
of the queue and the global bound on running + queued tasks (ExecutorBusy),
and the dataset name (BadRequest unless the executor's config names it).
"""
from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

from core.delegation.encoding import encode_result
from core.delegation.errors import ExecutorBusy, TaskTimedOut
from core.delegation.proofs import execution_payload, read_statement, sign_payload
from core.delegation.request import TaskRequest
from core.delegation.runner import CHILD_MODULE, RunResult, run_inline, run_task
from core.delegation.tasks import TASK_TYPES, task_type
from core.config import check_task_datasets
from core.errors import BadRequest, RateLimited


class RateLimit:
    """Token buckets per key (``burst`` tokens, refilled at ``per_second``), at most ``max_keys`` kept."""

    def __init__(self, burst: int, per_second: float, *, clock=time.monotonic, max_keys: int = 1024):
        if burst < 1 or per_second <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be at least 1 and per_second positive")
        self.burst, self.rate, self.clock, self.max_keys = burst, per_second, clock, max_keys
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, key: str) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if wait == 0.0 else tokens, now)
        while len(self._buckets) > self.max_keys:  # forget the least recently seen peer
            self._buckets.popitem(last=False)
        return wait


@dataclass
class Served:
    """What the service sends back: the proof, the result bytes it covers, and the run. The
    statement is read from the signed payload when asked for (the record): none is made on the
    answer's path."""
    proof: dict
    result_bytes: bytes
    payload: bytes
    run: RunResult

    @property
    def statement(self) -> dict:
        """The signed statement (read from its payload, as a requester reads it)."""
        return read_statement(self.payload)


def check_datasets(datasets: dict) -> dict[str, str]:
    """Validate the executor's ``name -> digits|synthetic|/absolute/path.{csv,npz}`` map
    (the rules of the ``task_datasets`` setting); ValueError naming the bad entry."""
    try:
        return check_task_datasets(datasets)
    except BadRequest as exc:
        raise ValueError(str(exc)) from None


class Executor:
    """Runs admitted task requests: ``max_running`` at once, ``max_queued`` waiting."""

    def __init__(self, identity, datasets: dict[str, str] | None = None, *, max_running: int = 1,
                 max_queued: int = 8, per_peer: int = 2, burst: int = 4, per_second: float = 0.5,
                 types: dict | None = None, child_module: str = CHILD_MODULE, clock=time.monotonic):
        if max_running < 1 or max_queued < 0 or per_peer < 1:
            raise ValueError("max_running and per_peer must be at least 1, max_queued at least 0")
        self.identity = identity
        self.datasets = check_datasets(datasets or {})
        self.types = TASK_TYPES if types is None else types
        self.child_module = child_module
        self.max_running, self.max_queued, self.per_peer = max_running, max_queued, per_peer
        self.rate = RateLimit(burst, per_second, clock=clock)
        self._slots = asyncio.Semaphore(max_running)
        self._outstanding: dict[str, int] = {}   # peer -> running + queued (entries at 0 removed)
        self.running = 0
        # fixed keys: served, and refusals by code
        self.counters: collections.Counter[str] = collections.Counter()

    @property
    def queued(self) -> int:
        return sum(self._outstanding.values()) - self.running

    def status(self) -> dict:
        return {"running": self.running, "queued": self.queued, "max_running": self.max_running,
                "max_queued": self.max_queued, "datasets": sorted(self.datasets),
                "counters": dict(self.counters)}

    def admit(self, request: TaskRequest) -> dict:
        """Reserve a place for ``request`` or raise; returns the child's context."""
        try:
            return self._admit(request)
        except (RateLimited, ExecutorBusy, BadRequest) as exc:
            self.counters[f"refused_{exc.code}"] += 1
            raise

    def _admit(self, request: TaskRequest) -> dict:
        peer = request.requester
        kind = task_type(request.type, self.types)
        wait = self.rate.take(peer)
        if wait:
            raise RateLimited(f"peer {peer[:16]} sent tasks faster than {self.rate.rate:g}/s "
                              f"(burst {self.rate.burst}); try again in {wait:.1f} s", retry_after=wait)
        mine, total = self._outstanding.get(peer, 0), sum(self._outstanding.values())
        if mine >= self.per_peer:
            raise ExecutorBusy(f"executor busy: peer {peer[:16]} already has {mine} task(s) running "
                               f"or queued (at most {self.per_peer} per peer)")
        if total >= self.max_running + self.max_queued:
            raise ExecutorBusy(f"executor busy: {self.running} task(s) running and {total - self.running} "
                               f"queued (limit {self.max_queued}); try again later")
        context = {}
        if kind.needs_dataset:
            name = request.args["dataset"]
            if name not in self.datasets:
                raise BadRequest(f"unknown dataset {name!r}: this executor offers "
                                 f"{', '.join(sorted(self.datasets)) or 'none'}")
            context["dataset_spec"] = self.datasets[name]
        self._outstanding[peer] = mine + 1
        return context

    def _release(self, peer: str) -> None:
        left = self._outstanding.get(peer, 1) - 1
        if left > 0:
            self._outstanding[peer] = left
        else:
            self._outstanding.pop(peer, None)

    def execute_now(self, request: TaskRequest) -> Served | None:
        """Admit, run and sign a request whose type runs inline (``isolated`` False: it computes
        nothing and never waits) at once, without a slot (it cannot overlap anything: it holds
        the loop); None, having done nothing, for any other type (:meth:`execute` queues it).
        Raises what :meth:`admit` raises."""
        kind = task_type(request.type, self.types)
        if kind.isolated:
            return None
        received = time.time()
        context = self.admit(request)
        self.running += 1
        try:
            run = run_inline(kind, request.args, context, checked=True)   # checked by _parse
        finally:
            self.running -= 1
            self._release(request.requester)
        self.counters["served" if run.error is None else f"failed_{run.status}"] += 1
        return self.prove(request, run, received)

    async def execute(self, request: TaskRequest) -> Served:
        """Admit, wait for a slot, run and sign (an inline type: :meth:`execute_now`). Raises only
        when the task never ran (RateLimited, ExecutorBusy, BadRequest, TaskTimedOut when the
        deadline passed in the queue)."""
        served = self.execute_now(request)
        if served is not None:
            return served
        received = time.time()
        context = self.admit(request)
        try:
            async with self._slots:
                left = request.deadline - time.time()
                if left <= 0:
                    self.counters["refused_task_timeout"] += 1
                    raise TaskTimedOut(f"task {request.task[:8]}'s deadline passed while it was queued",
                                       timeout=request.deadline - request.created)
                kind = task_type(request.type, self.types)
                self.running += 1
                try:
                    run = await run_task(kind.name, request.args, kind.limits.with_wall(left),
                                         context=context, child_module=self.child_module)
                finally:
                    self.running -= 1
        finally:
            self._release(request.requester)
        self.counters["served" if run.error is None else f"failed_{run.status}"] += 1
        return self.prove(request, run, received)

    def prove(self, request: TaskRequest, run: RunResult, received: float) -> Served:
        """The signed proof of ``run`` for ``request`` and the result bytes it covers."""
        if run.error is None:
            result = run.raise_for_status()
            result_bytes = run.result_bytes if run.result_bytes is not None else encode_result(result)
        else:
            result = {"error": {"code": run.status, "message": str(run.error)}}
            result_bytes = encode_result(result)
        kind = task_type(request.type, self.types)
        quality = {k: result[k] for k in kind.quality_keys if run.error is None and k in result}
        payload = execution_payload(
            task=request.task, type=request.type, request_digest=request.digest,
            executor=self.identity.id, requester=request.requester, received=received,
            started=run.started, ended=max(run.started, run.ended), cost=run.cost.to_dict(),
            quality=quality, exit={"status": run.status, "code": run.exit_code,
                                   "message": "" if run.error is None else str(run.error)[:500]},
            result_bytes=result_bytes)
        return Served(sign_payload(self.identity, payload), result_bytes, payload, run)
