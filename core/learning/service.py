"""The learning service: training tasks this node coordinates and tasks it works on.

Reached as ``node.service("learning")``. Tasks live in the store (schema component
"learning") and their checkpoints under ``home/ml/<task>/``; after a restart
:meth:`LearningService.start` resumes every running task from its newest
checkpoint. Nothing here imports torch at module level.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Callable

from core import events as ev
from core.errors import BadRequest, CoveyError, UnknownTask
from core.peers import Capability, Tier

from . import db
from . import protocol as proto
from .coordinator import CoordinatorTask
from .db import MIGRATIONS
from .worker import WorkerRole
from .aggregator_role import AggregatorRole

log = logging.getLogger("covey.learning")

AUTO_JOIN_ENV = "COVEY_ML_AUTO_JOIN"


class LearningService:
    """Federated learning on a node: coordinator tasks plus the worker role."""

    name = "learning"
    migrations = MIGRATIONS

    def __init__(self, node) -> None:
        self.node = node
        self.tasks: dict[str, CoordinatorTask] = {}
        self._spawned: set[asyncio.Task] = set()
        self.auto_join = os.environ.get(AUTO_JOIN_ENV, "").lower() in ("1", "true", "yes", "on")
        self.worker = WorkerRole(self)
        self.aggregator = AggregatorRole(self)   # two levels: the groups this node aggregates
        contribute = Capability.LEARN_CONTRIBUTE
        node.on_message("ml.join", self._on_join, capability=contribute)
        node.on_message("ml.update", self._on_update, capability=contribute)
        node.on_message("ml.info", self._on_info, capability=contribute)
        node.on_message("ml.agg.partial", self._on_partial, capability=contribute)
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        store = self.node.store
        if store.get_setting("ml.auto_join") is not None:
            self.auto_join = bool(store.get_setting("ml.auto_join"))
        self.worker.load()
        for row in db.load_tasks(store):
            try:
                spec = proto.TaskSpec.from_dict(db.spec_of(row))
            except (CoveyError, ValueError) as exc:
                log.error("task %s has an unreadable spec (%s); leaving it alone", row["id"], exc)
                continue
            task = CoordinatorTask(self, row["id"], spec, row["state"], row["created"])
            task.error = row["error"]
            task.load_participants()
            self.tasks[task.id] = task
            await asyncio.to_thread(self._load_history, task)  # status is right before the loop resumes
            if task.state == "running":
                log.info("resuming training task %s from round %d", task.id, task.round)
                task.launch()
        self._unsubscribe = self.node.events.on(ev.PEER_CONNECTED, self._on_peer_connected)

    @staticmethod
    def _load_history(task: CoordinatorTask) -> None:
        task.history = [h["meta"] for h in task.ckpt.history() if h["round"] > 0]
        task.round = task.history[-1]["round"] if task.history else 0
        for h in task.history:
            task.rejections.update(h.get("reasons", {}))

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self.tasks.values():
            await task.halt()
        for t in list(self._spawned):
            t.cancel()
        await asyncio.gather(*self._spawned, return_exceptions=True)

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` as a task owned by this service (cancelled on stop)."""
        t = asyncio.ensure_future(coro)
        self._spawned.add(t)
        t.add_done_callback(self._done)
        return t

    def _done(self, t: asyncio.Task) -> None:
        self._spawned.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("learning task failed: %s", t.exception(), exc_info=t.exception())

    def _on_peer_connected(self, event) -> None:
        peer = event.data.get("peer")
        for task in self.tasks.values():
            if task.state == "running" and task.data is not None and peer not in task.participants \
                    and peer not in task.invited and task._allowed(peer):
                self.spawn(task.invite(peer))

    # -- commands -----------------------------------------------------------------
    async def start_task(self, **options) -> dict:
        """Create a task from ``options`` (TaskSpec fields, and ``groups``: that many connected CORE
        peers become the aggregators), invite workers, and start rounds."""
        groups = options.pop("groups", None)
        if groups is not None:
            options["aggregators"] = self._choose_aggregators(groups, options.get("aggregators"))
        spec = proto.TaskSpec.from_dict({k: v for k, v in options.items() if v is not None})
        self._check_aggregators(spec)
        await asyncio.to_thread(_fill_shape, spec)
        if spec.clients == 0 and spec.partition != "own":
            # at least the round's minimum: a worker connecting later still gets a share of the data
            spec.clients = max(spec.round_minimum, len(self.eligible_workers(spec.tiers)))
        task_id = secrets.token_hex(8)
        task = CoordinatorTask(self, task_id, spec)
        task.save()
        self.tasks[task_id] = task
        self.node.events.emit(ev.ML_STATE, task=task_id, role="coordinator", state="running",
                              round=0, rounds=spec.rounds)
        task.launch()
        return {"task": task_id, "state": "running", "rounds": spec.rounds, "spec": spec.to_dict()}

    def eligible_workers(self, tiers: list[str] | None = None) -> list[str]:
        """The connected peers that may contribute updates to a task taking ``tiers`` (default: every
        tier that may): the workers a new task would invite now."""
        spec = proto.TaskSpec(tiers=list(tiers) if tiers is not None else list(proto.TIERS))
        return sorted(p for p in self.node.connected_peers() if self._may_contribute(p, spec))

    def _may_contribute(self, peer: str, spec: proto.TaskSpec) -> bool:
        try:
            self.node.peers.check(peer, Capability.LEARN_CONTRIBUTE)
        except CoveyError:
            return False
        return self.node.peers.tier_of(peer).value in spec.tiers and peer not in spec.aggregators

    def _choose_aggregators(self, groups, named) -> list[str]:
        """``groups`` connected CORE peers (sorted by id) as the group aggregators."""
        if named:
            raise BadRequest("give either --aggregators PEER,... or --groups N, not both")
        if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= proto.MAX_AGGREGATORS:
            raise BadRequest(f"--groups must be a whole number between 1 and {proto.MAX_AGGREGATORS}")
        core = sorted(p for p in self.node.connected_peers() if self.node.peers.tier_of(p) is Tier.CORE)
        if len(core) < groups:
            raise BadRequest(f"--groups {groups} needs {groups} connected CORE peers to aggregate; "
                             f"{len(core)} are connected")
        return core[:groups]

    def _check_aggregators(self, spec: proto.TaskSpec) -> None:
        """Every named aggregator is a peer this node holds as CORE (it sees its group's updates)."""
        for peer in spec.aggregators:
            if self.node.peers.tier_of(peer) is not Tier.CORE:
                raise BadRequest(f"aggregator {peer[:12]} is not a CORE peer of this node; only a CORE peer "
                                 f"may see a group's updates (`covey peers trust {peer[:12]} core`)")

    def status(self, task: str | None = None) -> dict:
        """The status of ``task`` (default: the newest task here), with the list of all tasks."""
        if task is None:
            if not self.tasks and not self.worker.members:
                raise UnknownTask("no training tasks yet: `covey ml start` creates one")
            if self.tasks:
                task = max(self.tasks.values(), key=lambda t: t.created).id
            else:
                task = next(reversed(self.worker.members))
        out = self._view(task)
        out["tasks"] = sorted(self.tasks) + sorted(t for t in self.worker.members if t not in self.tasks)
        out["invitations"] = [m.task for m in self.worker.members.values() if m.state == "invited"]
        return out

    def _view(self, task: str) -> dict:
        task = self._resolve(task)
        if task in self.tasks:
            return self.tasks[task].status()
        return self.worker.view(self.worker.members[task])

    def _resolve(self, ref: str) -> str:
        ids = set(self.tasks) | set(self.worker.members)
        if ref in ids:
            return ref
        matches = [t for t in ids if t.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        raise UnknownTask(f"no training task {ref!r} here" if not matches else
                          f"task prefix {ref!r} is ambiguous; give more digits")

    async def worker_status(self, task: str) -> dict:
        """A worker's view, completed with the coordinator's metrics when it is reachable."""
        task = self._resolve(task)
        if task in self.tasks:
            return self.tasks[task].status()
        m = self.worker.members[task]
        try:
            remote = await self.node.request(m.coordinator, "ml.info", {"task": task}, timeout=10)
        except CoveyError as exc:
            log.info("coordinator of %s unreachable for status: %s", task, exc)
            return self.worker.view(m)
        local = self.worker.view(m)
        return {**remote, "role": "worker", "membership": m.state, "partition": m.partition,
                "coordinator": m.coordinator,
                **{k: local[k] for k in ("model", "params", "max_params", "within_budget")}}

    async def stop_task(self, task: str) -> dict:
        task = self._resolve(task)
        if task not in self.tasks:
            m = self.worker.members[task]
            m.state = "left"
            self.worker._save(m)
            return self.worker.view(m)
        t = self.tasks[task]
        await t.halt("stopped")
        return t.status()

    async def join(self, task: str, data: str | None = None) -> dict:
        return await self.worker.join(self._resolve(task), data)

    def budget(self, params: int | None = None) -> dict:
        """Show (or set) the largest model, in parameters, this node trains as a worker."""
        if params is not None:
            self.worker.set_max_params(params)
        return {"max_params": self.worker.max_params}

    def set_auto_join(self, on: bool) -> None:
        self.auto_join = bool(on)
        self.node.store.set_setting("ml.auto_join", bool(on))

    # -- handlers ------------------------------------------------------------------
    def _task_for(self, body) -> CoordinatorTask:
        tid = proto.task_id(body)
        task = self.tasks.get(tid)
        if task is None:
            raise UnknownTask(f"this node coordinates no task {tid}")
        return task

    def _on_join(self, peer_id: str, body: dict) -> dict:
        return self._task_for(body).on_join(peer_id, body)

    async def _on_update(self, peer_id: str, envelope: dict) -> dict:
        if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
            from core.errors import MalformedMessage
            raise MalformedMessage("an ml.update must be a signed envelope")
        task = self._task_for(envelope["body"])
        return await task.on_update(peer_id, envelope)

    async def _on_partial(self, peer_id: str, envelope: dict) -> dict:
        body = envelope.get("body") if isinstance(envelope, dict) else None
        return await self._task_for(body).on_partial(peer_id, envelope)

    def _on_info(self, peer_id: str, body: dict) -> dict:
        task = self._task_for(body)
        if peer_id not in task.participants:
            from core.errors import RefusedByPolicy
            raise RefusedByPolicy("only participants may read a task's metrics")
        out = task.status()
        out.pop("spec", None)
        return out


def _fill_shape(spec: proto.TaskSpec) -> None:
    """Blocking: load the dataset once to learn its shape, and check the model fits it."""
    from core.learning.models import weight_spec
    from .worker import _dataset
    data = _dataset(spec.dataset, spec.seed)
    spec.n_features, spec.n_classes = data.n_features, data.n_classes
    spec.image_shape = list(data.image_shape) if data.image_shape else None
    weight_spec(spec.model, spec.n_features, spec.n_classes, spec.image, spec.hidden)
    spec.check()
