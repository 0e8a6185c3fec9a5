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
from core.errors import CoveyError, RefusedByPolicy, UnknownTask
from core.peers import Capability
from core.signed import seal

from . import protocol as proto
from .intake import OpenRound, UpdateIntake

if TYPE_CHECKING:
    from .data import Dataset
    from .service import LearningService
    from .tensors import Spec

log = logging.getLogger("covey.learning.aggregator")

MAX_TASKS = 8            # tasks this node aggregates a group of at once (the oldest is forgotten)
PARTIAL_TIMEOUT = 30.0


class GroupTask(UpdateIntake):
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
        ref_loss = await asyncio.to_thread(self._prepare, gr)
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
        if self._collector is not None and not self._collector.done():
            self._collector.cancel()
        if self.current is not None:
            self.current.closed = True

    async def _collect(self, rs: OpenRound) -> None:
        try:
            await asyncio.wait_for(rs.all_in.wait(), max(0.0, rs.deadline_at - time.monotonic()))
        except asyncio.TimeoutError:
            log.info("task %s round %d: group deadline passed", self.id, rs.number)
        rs.closed = True
        vector, weight, kept, outliers = await asyncio.to_thread(self._combine, rs)
        self._settle(rs, outliers)   # on the loop: reputation changes emit events (and may ban)
        body = {"task": self.id, "round": rs.number, "round_id": rs.round_id, "vector": vector,
                "weight": weight, "loss": _mean_loss(rs), "workers": self._worker_entries(rs, kept, outliers)}
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
