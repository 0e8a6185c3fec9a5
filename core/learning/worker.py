"""The worker side of federated learning: accept tasks, train each round off the loop, send signed updates.

A worker keeps its data: it trains on its partition of a built-in dataset
(simulation) or on its own file, and only weights (or, with secure
aggregation, a masked delta) leave the machine, sealed as ``ml.update``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from core.errors import BadRequest, CoveyError, MalformedMessage, RefusedByPolicy
from core.peers import Capability
from core.signed import Verifier, seal

from . import protocol as proto
from .protocol import UnknownTask

log = logging.getLogger("covey.learning.worker")


@lru_cache(maxsize=8)
def _dataset(name: str, seed: int):
    from core.learning.data import load_dataset
    return load_dataset(name, seed=seed)


@lru_cache(maxsize=32)
def _partition(name: str, seed: int, n: int, scheme: str) -> tuple:
    from core.learning.data import partition
    return tuple(partition(_dataset(name, seed).y_train, n, scheme, seed=seed))


def _prepare(spec: dict, data: str | None) -> None:
    """Blocking, before joining: load (and so validate) the data and warm torch up, so the
    first round is not spent importing."""
    from core.learning.train import warm_up
    task = proto.TaskSpec.from_dict(spec)
    _dataset(data or task.dataset, task.seed)
    warm_up(task.model, task.n_features, task.n_classes,
            tuple(task.image_shape) if task.image_shape else None, task.hidden)


def local_data(spec: proto.TaskSpec, partition: int | None, n_partitions: int, own_file: str | None):
    """(X, y) this worker trains on: its partition of a built-in dataset, or its own file."""
    if own_file:
        ds = _dataset(own_file, spec.seed)
        if ds.n_features != spec.n_features or ds.n_classes > spec.n_classes:
            raise BadRequest(f"local data {own_file!r} has {ds.n_features} features and {ds.n_classes} "
                             f"classes; the task's model needs {spec.n_features} and at most {spec.n_classes}")
        return ds.X_train, ds.y_train
    if partition is None:
        raise BadRequest("this task trains on each worker's own file: join it with --data FILE")
    ds = _dataset(spec.dataset, spec.seed)
    idx = _partition(spec.dataset, spec.seed, max(n_partitions, 1), spec.partition)[partition]
    return ds.X_train[idx], ds.y_train[idx]


@dataclass
class Membership:
    """A task this node was invited to or works for."""
    task: str
    coordinator: str
    spec: dict
    state: str = "invited"          # invited | joined | left
    partition: int | None = None
    data: str | None = None
    last_round: int = 0


@dataclass
class _RoundWork:
    ann: proto.RoundAnnouncement
    sa: object | None = None
    shares_in: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerRole:
    """Handles ml.invite / ml.round / ml.sa.* for the tasks this node works on."""

    def __init__(self, service):
        self.service = service
        self.node = service.node
        self.verifier = Verifier(self.node.settings.clock_skew)
        self.members: dict[str, Membership] = {}
        self._rounds: dict[bytes, _RoundWork] = {}
        node = self.node
        node.on_message("ml.invite", self._on_invite)
        node.on_message("ml.round", self._on_round)
        node.on_message("ml.sa.roster", self._on_roster)
        node.on_message("ml.sa.relay", self._on_relay)
        node.on_message("ml.sa.unmask", self._on_unmask)

    # -- persistence
    def load(self) -> None:
        for row in self.node.store.query("SELECT * FROM ml_memberships"):
            import json
            self.members[row["task"]] = Membership(row["task"], row["coordinator"], json.loads(row["spec"]),
                                                   row["state"], row["partition"], row["data"],
                                                   row["last_round"])

    def _save(self, m: Membership) -> None:
        import json
        self.node.store.execute(
            "INSERT INTO ml_memberships(task, coordinator, spec, state, partition, data, last_round, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task) DO UPDATE SET coordinator=excluded.coordinator, "
            "spec=excluded.spec, state=excluded.state, partition=excluded.partition, data=excluded.data, "
            "last_round=excluded.last_round, updated=excluded.updated",
            (m.task, m.coordinator, json.dumps(m.spec), m.state, m.partition, m.data, m.last_round, time.time()))

    # -- invitations and joining
    def _on_invite(self, peer_id: str, body: dict) -> dict:
        task = proto.task_id(body)
        spec = proto.TaskSpec.from_dict(proto.need(body, "spec", dict))
        self.node.peers.check(peer_id, Capability.LEARN_CONTRIBUTE)  # we only work for trusted peers
        m = self.members.get(task)
        if m is None or m.coordinator != peer_id:
            m = Membership(task, peer_id, spec.to_dict())
            self.members[task] = m
            self._save(m)
        from core import events as ev
        self.node.events.emit(ev.ML_STATE, task=task, role="worker", state=m.state, coordinator=peer_id)
        auto = self.service.auto_join and spec.partition != "own"
        if auto and m.state != "joined":
            self.service.spawn(self._auto_join(task))
        return {"joined": auto or m.state == "joined"}

    async def _auto_join(self, task: str) -> None:
        try:
            await self.join(task)
        except CoveyError as exc:
            log.warning("auto-join of task %s failed: %s", task, exc)

    async def join(self, task: str, data: str | None = None) -> dict:
        """Join an invited task: the coordinator assigns a partition (or we train on ``data``)."""
        m = self.members.get(task)
        if m is None:
            raise UnknownTask(f"no invitation for task {task!r}: `covey ml status` lists the invitations")
        await asyncio.to_thread(_prepare, m.spec, data)
        reply = await self.node.request(m.coordinator, "ml.join", {"task": task, "own_data": bool(data)})
        part = proto.need(reply, "partition", int, optional=True)
        m.spec = proto.TaskSpec.from_dict(proto.need(reply, "spec", dict)).to_dict()
        m.partition, m.data, m.state = part, data, "joined"
        self._save(m)
        from core import events as ev
        self.node.events.emit(ev.ML_STATE, task=task, role="worker", state="joined", partition=part)
        return self.view(m)

    def view(self, m: Membership) -> dict:
        return {"task": m.task, "role": "worker", "state": m.state, "coordinator": m.coordinator,
                "partition": m.partition, "round": m.last_round, "rounds": m.spec.get("rounds"),
                "accuracy": None, "loss": None, "epsilon": None, "history": []}

    # -- rounds
    def _on_round(self, peer_id: str, envelope: dict) -> dict:
        signer, body = self.verifier.open(envelope, "ml.round")
        if signer != peer_id:
            raise RefusedByPolicy("a round announcement must be signed by the coordinator that sends it")
        ann = proto.parse_round(body, self.node.settings.max_message)
        m = self.members.get(ann.task)
        if m is None or m.state != "joined" or m.coordinator != peer_id:
            raise RefusedByPolicy(f"this node has not joined task {ann.task} with that coordinator")
        spec = proto.TaskSpec.from_dict(ann.spec)
        work = _RoundWork(ann)
        reply: dict = {"ok": True}
        if ann.secagg is not None:
            from core.learning.secagg import SecAggParams, SecAggWorker
            work.sa = SecAggWorker(self.node.identity.id, SecAggParams.from_dict(ann.secagg))
            reply["keys"] = work.sa.advertise()
        self._forget_old_rounds()
        self._rounds[ann.round_id] = work
        self.service.spawn(self._train_and_send(m, spec, work))
        return reply

    def _forget_old_rounds(self) -> None:
        while len(self._rounds) > 8:
            self._rounds.pop(next(iter(self._rounds)))

    async def _train_and_send(self, m: Membership, spec: proto.TaskSpec, work: _RoundWork) -> None:
        ann = work.ann
        try:
            result, delta = await asyncio.to_thread(self._train, m, spec, ann)
            body = {"task": ann.task, "round": ann.round, "round_id": ann.round_id,
                    "n_examples": result.n_examples, "loss": result.loss}
            if work.sa is not None:
                await asyncio.wait_for(work.shares_in.wait(), ann.deadline)
                weight = 1.0 if spec.dp else min(1.0, result.n_examples / ann.weight_cap)
                body["masked"] = await asyncio.to_thread(work.sa.masked_input, delta, weight)
            else:
                from core.learning.tensors import encode
                body["weights"] = await asyncio.to_thread(encode, result.weights)
            envelope = seal(self.node.identity, "ml.update", body)
            reply = await self.node.request(m.coordinator, "ml.update", envelope, timeout=ann.deadline + 30)
            m.last_round = ann.round
            self._save(m)
            if not reply.get("accepted"):
                log.warning("task %s round %d: our update was rejected (%s)", ann.task, ann.round,
                            reply.get("reason"))
        except asyncio.TimeoutError:
            log.warning("task %s round %d: secure-aggregation shares never arrived", ann.task, ann.round)
        except CoveyError as exc:
            log.warning("task %s round %d: %s", ann.task, ann.round, exc)

    def _train(self, m: Membership, spec: proto.TaskSpec, ann: proto.RoundAnnouncement):
        """Blocking: decode the global weights, train locally, apply a simulated attack."""
        from core.learning.attacks import apply_attack, flip_labels
        from core.learning.models import weight_spec
        from core.learning.tensors import decode, flatten
        from core.learning.train import TrainConfig, train_local
        image = tuple(spec.image_shape) if spec.image_shape else None
        wspec = weight_spec(spec.model, spec.n_features, spec.n_classes, image, spec.hidden)
        global_w = decode(ann.weights, wspec, self.node.settings.max_message)
        X, y = local_data(spec, m.partition, ann.n_partitions, m.data)
        if ann.attack == "label_flip":
            y = flip_labels(y, spec.n_classes)
        seed = (spec.seed * 1_000_003 + ann.round * 1009 + (m.partition or 0) * 7 + ann.attempt) % 2**31
        cfg = TrainConfig(model=spec.model, epochs=spec.epochs, lr=spec.lr, batch=spec.batch,
                          prox_mu=spec.prox_mu, seed=seed, dp_clip=spec.dp_clip, dp_noise=spec.dp_noise,
                          hidden=spec.hidden)
        result = train_local(global_w, X, y, cfg, spec.n_features, spec.n_classes, image)
        if ann.attack in ("sign_flip", "noise"):
            result.weights = apply_attack(ann.attack, global_w, result.weights, np.random.default_rng(seed))
        delta = flatten(result.weights) - flatten(global_w)
        return result, delta

    # -- secure aggregation phases
    def _work(self, peer_id: str, body: dict) -> _RoundWork:
        proto.task_id(body)
        work = self._rounds.get(proto.need(body, "round_id", bytes))
        if work is None or work.sa is None:
            raise MalformedMessage("no secure-aggregation round with that id here")
        m = self.members.get(work.ann.task)
        if m is None or m.coordinator != peer_id:
            raise RefusedByPolicy("only the task's coordinator drives its secure aggregation")
        return work

    def _on_roster(self, peer_id: str, body: dict) -> dict:
        work = self._work(peer_id, body)
        return {"blobs": work.sa.share_keys(proto.need(body, "roster", dict))}

    def _on_relay(self, peer_id: str, body: dict) -> dict:
        work = self._work(peer_id, body)
        work.sa.receive_shares(proto.need(body, "blobs", dict))
        work.shares_in.set()
        return {"ok": True}

    def _on_unmask(self, peer_id: str, body: dict) -> dict:
        work = self._work(peer_id, body)
        return work.sa.unmask(proto.need(body, "survivors", list), proto.need(body, "dropped", list))
