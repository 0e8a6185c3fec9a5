"""The group aggregator of two-level learning: take a group's updates, check them, forward one partial.

Any node can serve: it must hold the coordinator at a tier that may
contribute learning updates (CORE/SANDBOX: it accepts ``ml.agg.round`` only
from such a peer) and be named in the task's ``aggregators`` (the coordinator
names only peers it holds as CORE). Per round the coordinator sends a sealed
``ml.agg.round`` with the global weights and the group (worker -> slot); the
group's workers send their sealed ``ml.update`` here as ``ml.agg.update``,
and each is admitted and checked exactly as the coordinator does one level
down (the same :class:`~core.learning.intake.UpdateIntake`: admission,
round, duplicate, weight cap, decoding, held-out validation), which needs the
task's held-out set to be a built-in dataset. When every member is in, or at
the round's deadline, the group's updates are combined
(:func:`core.learning.compose.group_partial`) and one sealed
``ml.agg.partial`` goes to the coordinator with each worker's outcome.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from core import events as ev
from core.admission import Admission, Reason
from core.errors import CoveyError, MalformedMessage, RefusedByPolicy, UnknownTask
from core.peers import Capability
from core.signed import seal

from . import offload
from . import protocol as proto
from .intake import OpenRound, UpdateIntake
from .secure_round import SecureRounds

if TYPE_CHECKING:
    from .data import Dataset
    from .service import LearningService
    from .tensors import Spec

log = logging.getLogger("covey.learning.aggregator")

MAX_TASKS = 8            # tasks this node aggregates a group of at once (the oldest is forgotten)
PARTIAL_TIMEOUT = 30.0


class GroupTask(UpdateIntake, SecureRounds):
    """One task this node aggregates a group of, for one coordinator."""

    def __init__(self, role: AggregatorRole, task_id: str, coordinator: str, spec: proto.TaskSpec) -> None:
        self.role = role
        self.node = role.node
        self.id = task_id
        self.coordinator = coordinator
        self.spec = spec
        self.round = 0
        self.current: OpenRound | None = None
        self.participants: dict[str, int] = {}     # only the open round's group (OpenRound.participants)
        self.rejections: Counter = Counter()
        self.data: Dataset | None = None
        self.wspec: Spec | None = None
        self.weights: dict[str, np.ndarray] | None = None
        self.forwarded: list[dict] = []            # what went to the coordinator, newest last (bounded)
        self._collector: asyncio.Task | None = None
        self._setup: asyncio.Task | None = None
        self.admission = Admission(self.node, "ml.update", Capability.LEARN_CONTRIBUTE,
                                   accountable=self._participant, label="ml update",
                                   words={Reason.NOT_SENDER: "not_participant"}, logger=log)

    def _prepare(self, gr: proto.GroupRound) -> float:
        """Blocking: load the held-out set and the round's global weights; the reference loss."""
        from core.learning.models import weight_spec
        from core.learning.tensors import decode
        from .worker import _dataset
        spec = self.spec
        self.data = _dataset(spec.dataset, spec.seed)
        self.wspec = weight_spec(spec.model, spec.n_features, spec.n_classes, spec.image, spec.hidden)
        self.weights = decode(gr.weights, self.wspec, self.node.settings.max_message)
        return self._evaluate(self.weights, True)[0] if spec.validate else math.inf

    async def open(self, gr: proto.GroupRound) -> None:
        """Open the group's round (replacing one still open: the coordinator dealt the groups again)."""
        self.close_collector()
        self._setup = None
        if self.data is None:   # the first round loads the held-out set (and torch): off the loop
            ref_loss = await asyncio.to_thread(self._prepare, gr)
        else:
            ref_loss = await offload.run(self._prepare, gr, params=self.spec.n_params())
        now = time.monotonic()
        self.round = gr.round - 1
        rs = OpenRound(gr.round, gr.attempt, gr.round_id, set(gr.group), now + gr.deadline, now,
                       weight_cap=gr.weight_cap, ref_loss=ref_loss, slots=dict(gr.group))
        for w in gr.group:   # a member this node does not take updates from (e.g. banned) is not waited for
            if not self.role.may_contribute(w, self.spec):
                rs.rejected[w] = "not_allowed"
                rs.reasons["not_allowed"] += 1
        rs.check_all_in()
        self.current = rs
        self._collector = self.role.service.spawn(self._collect(rs))

    def close_collector(self) -> None:
        for job in (self._collector, self._setup):
            if job is not None and not job.done():
                job.cancel()
        if self.current is not None:
            self.current.closed = True

    async def _collect(self, rs: OpenRound) -> None:
        try:
            await asyncio.wait_for(rs.all_in.wait(), max(0.0, rs.deadline_at - time.monotonic()))
        except asyncio.TimeoutError:
            log.info("task %s round %d: group deadline passed", self.id, rs.number)
        rs.closed = True
        if self.spec.secure_agg:
            vector, weight, kept, outliers = await self._unmask_group(rs)
        else:
            vector, weight, kept, outliers = await offload.run(self._combine, rs, params=self.spec.n_params())
        self._settle(rs, outliers)   # on the loop: reputation changes emit events (and may ban)
        body = {"task": self.id, "round": rs.number, "round_id": rs.round_id, "vector": vector,
                "weight": weight, "loss": _finite_or_none(_mean_loss(rs)), "workers": self._worker_entries(rs, kept, outliers)}
        self.round = rs.number
        if self.current is rs:
            self.current = None
        self.forwarded = [*self.forwarded[-9:], body]
        try:
            reply = await self.node.request(self.coordinator, "ml.agg.partial",
                                            seal(self.node.identity, "ml.agg.partial", body),
                                            timeout=PARTIAL_TIMEOUT)
            if not reply.get("accepted"):
                log.warning("task %s round %d: the coordinator refused our partial (%s)", self.id, rs.number,
                            reply.get("reason"))
        except CoveyError as exc:
            log.warning("task %s round %d: partial not delivered: %s", self.id, rs.number, exc)

    def secure_setup(self, keys: dict) -> None:
        """Secure aggregation: run the open round's roster and share relay with the workers' signed keys."""
        rs = self.current
        if rs is None or rs.closed or rs.sa is not None or self._setup is not None:
            raise RefusedByPolicy("no open group round waits for its secure-aggregation keys")
        from core.learning.secagg import SecAggParams, default_threshold
        params = SecAggParams(round_id=rs.round_id, threshold=default_threshold(len(rs.participants)),
                              dim=self.spec.n_params())
        self._setup = self.role.service.spawn(self._secure_setup(rs, params, keys))

    async def _secure_setup(self, rs: OpenRound, params, keys: dict) -> None:
        if await self._secagg_setup(rs, params, keys, proto.SECAGG_MIN_ROSTER) is None:
            rs.why = "too few workers of the group for secure aggregation"
            rs.dropped |= rs.participants
            rs.check_all_in()

    async def _unmask_group(self, rs: OpenRound) -> tuple[bytes | None, float, set[str], dict[str, str]]:
        """The group's unmasked weighted sum as its partial; nothing if it cannot be unmasked or the
        workers' claimed example counts do not add up to the weight they masked."""
        sa = rs.sa
        unmasked = await self._secagg_unmask(rs, sa) if sa is not None else None
        if sa is None or unmasked is None:
            log.warning("task %s round %d: the group forwards no sum: %s", self.id, rs.number, rs.why)
            return None, 0.0, set(), {}
        total, survivors = unmasked
        # Each worker masked weight * delta with weight = n / cap (1 under DP): scale back to n * delta.
        scale = 1.0 if self.spec.dp else float(rs.weight_cap)
        weight = float(sum(1 if self.spec.dp else rs.accepted[p][1] for p in survivors))
        masked_weight = float(sa.total_weight or 0.0) * scale
        if abs(masked_weight - weight) > (len(survivors) * 0.5 / sa.params.scale + 1e-9) * scale:
            rs.why = f"the masked weights ({masked_weight:.4f}) do not match the claimed counts ({weight:g})"
            log.warning("task %s round %d: %s", self.id, rs.number, rs.why)
            return None, 0.0, set(), {}
        vector = np.asarray(total, dtype=np.float64) * scale
        return vector.astype("<f8").tobytes(), weight, set(survivors), {}

    def _combine(self, rs: OpenRound) -> tuple[bytes | None, float, set[str], dict[str, str]]:
        """Blocking: the group's partial (float64 bytes, weight), the updates kept and the outliers."""
        from core.learning.compose import group_partial
        from core.learning.tensors import flatten
        peers = sorted(p for p, v in rs.accepted.items() if v[0] is not None)
        if not peers:
            return None, 0.0, set(), {}
        flats = [f for f in (rs.accepted[p][0] for p in peers) if f is not None]
        counts = [1 if self.spec.dp else rs.accepted[p][1] for p in peers]
        _, _, weights = self._loaded()
        partial, kept, outliers = group_partial(self.spec.aggregator, flats, counts, self.spec.f(len(peers)),
                                                flatten(weights))
        return (partial.vector.astype("<f8").tobytes(), partial.weight, {peers[i] for i in kept},
                {peers[i]: "outlier" for i in outliers})

    def drop(self, peer: str) -> None:
        """A member disconnected: the group stops waiting for it."""
        rs = self.current
        if rs is not None and not rs.closed and peer in rs.participants:
            rs.dropped.add(peer)
            rs.check_all_in()


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None   # NaN cannot be signed


def _mean_loss(rs: OpenRound) -> float:
    """The group's training loss, weighted by example counts (NaN if no update reported one)."""
    losses = [(v[2], v[1]) for v in rs.accepted.values() if math.isfinite(v[2])]
    return sum(x * n for x, n in losses) / sum(n for _, n in losses) if losses else math.nan


class AggregatorRole:
    """Handles ml.agg.round / ml.agg.update: the groups this node aggregates."""

    def __init__(self, service: LearningService) -> None:
        self.service = service
        self.node = service.node
        # Rounds come from coordinators this node's user trusts to train with; a bad one is refused.
        self.admission = Admission(self.node, "ml.agg.round", Capability.LEARN_CONTRIBUTE,
                                   accountable=False, logger=log)
        self.tasks: dict[str, GroupTask] = {}
        self.node.on_message("ml.agg.round", self._on_round)
        self.node.on_message("ml.agg.update", self._on_update)
        self.node.on_message("ml.agg.reach", self._on_reach)
        self.node.on_message("ml.agg.keys", self._on_keys)
        self.node.events.on(ev.PEER_DISCONNECTED, self._on_disconnect)

    def _on_disconnect(self, event) -> None:
        for task in self.tasks.values():
            task.drop(event.data.get("peer"))

    def may_contribute(self, peer: str, spec: proto.TaskSpec) -> bool:
        """Whether this node takes ``peer``'s updates for a task with ``spec`` (capability and tier)."""
        return self.service._may_contribute(peer, spec)

    async def _on_round(self, peer_id: str, envelope: dict) -> dict:
        _, body = self.admission.open(peer_id, envelope)
        gr = proto.parse_group_round(body, self.node.settings.max_message)
        spec = proto.TaskSpec.from_dict(gr.spec)
        if self.node.identity.id not in spec.aggregators:
            raise RefusedByPolicy(f"task {gr.task} does not name this node as an aggregator")
        from core.learning.data import BUILTIN
        if spec.dataset not in BUILTIN:
            raise RefusedByPolicy(f"task {gr.task} holds out {spec.dataset[:80]!r}, which is not built in; an "
                                  "aggregator opens no file a coordinator names, so it cannot check updates")
        self.service.worker._check_budget(gr.task, spec)
        task = self.tasks.get(gr.task)
        if task is not None and task.coordinator != peer_id:
            raise RefusedByPolicy(f"task {gr.task} is aggregated here for another coordinator")
        if task is None or task.spec != spec:
            if task is not None:
                task.close_collector()
            task = self.tasks[gr.task] = GroupTask(self, gr.task, peer_id, spec)
            while len(self.tasks) > MAX_TASKS:
                self.tasks.pop(next(iter(self.tasks))).close_collector()
        await task.open(gr)
        return {"ok": True}

    def _on_reach(self, peer_id: str, body: dict) -> dict:
        """Which of the named workers this node can answer for: those connected to it, and those it
        banned (they stay in its group, refused, rather than start afresh in another)."""
        from core.identity import is_peer_id
        self.node.peers.check(peer_id, Capability.LEARN_CONTRIBUTE)   # a coordinator we train with
        proto.task_id(body)
        workers = proto.need(body, "workers", list, max_len=proto.MAX_GROUP)
        if not all(isinstance(w, str) and is_peer_id(w) for w in workers):
            raise MalformedMessage("workers must be peer ids")
        connected = set(self.node.connected_peers())
        return {"reach": [w for w in workers if w in connected or self._banned(w)]}

    def _on_keys(self, peer_id: str, body: dict) -> dict:
        """Secure aggregation: the group's workers' signed keys, from the coordinator of the open round."""
        task = self.tasks.get(proto.task_id(body))
        if task is None or task.coordinator != peer_id or not task.spec.secure_agg:
            raise UnknownTask("this node aggregates no secure group of that task for that coordinator")
        round_id = proto.need(body, "round_id", bytes)
        keys = proto.need(body, "keys", dict, max_len=proto.MAX_GROUP)
        rs = task.current
        if rs is None or rs.round_id != round_id or not set(keys) <= rs.participants:
            raise MalformedMessage("the keys are not for the open group round or name workers outside it")
        task.secure_setup(keys)
        return {"ok": True}

    def _banned(self, peer: str) -> bool:
        rec = self.node.peers.get(peer)
        return rec is not None and bool(rec.banned)

    async def _on_update(self, peer_id: str, envelope: dict) -> dict:
        body = envelope.get("body") if isinstance(envelope, dict) else None
        task = self.tasks.get(proto.task_id(body))
        if task is None:
            raise UnknownTask("this node aggregates no group of that task")
        return await task.on_update(peer_id, envelope)

    def status(self) -> list[dict]:
        """The groups this node aggregates: task, coordinator, last round, the last partial's outcomes."""
        return [{"task": t.id, "coordinator": t.coordinator, "round": t.round,
                 "open": t.current is not None and not t.current.closed,
                 "last": ({k: v for k, v in t.forwarded[-1].items() if k != "vector"} if t.forwarded else None)}
                for t in self.tasks.values()]
