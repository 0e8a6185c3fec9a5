"""The worker side of federated learning: accept tasks, train each round off the loop, send signed updates.

A worker keeps its data: it trains on its partition of a built-in dataset
(simulation) or on its own file, and only weights (or, with secure
aggregation, a masked delta) leave the machine, sealed as ``ml.update``.

A worker does not let its coordinator steer it beyond the task the user
accepted: it never opens a path that came from the network (a dataset named
in a spec must be built in; its own file comes only from ``--data``), it
refuses a model larger than its parameter budget, it pins the spec accepted
at join and refuses rounds with another, it re-checks the coordinator's tier
and ban on every round and secure-aggregation message, and in a task joined
as secure it never sends plain weights.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from core.errors import BadRequest, CoveyError, MalformedMessage, RefusedByPolicy, UnknownTask
from core.admission import Admission
from core.peers import Capability
from core.signed import seal

from . import db, offload
from . import protocol as proto
from . import roster as sa_roster

if TYPE_CHECKING:  # numpy/torch-heavy modules, imported when a round runs
    from .data import Dataset
    from .secagg import SecAggWorker
    from .service import LearningService

DEFAULT_MAX_PARAMS = 5_000_000   # the largest model a worker trains unless its user raises the budget
MAX_PARAMS_SETTING = "ml.max_params"
MAX_CACHED_SPECS = 64   # parsed specs of the tasks this node works on, kept for the per-round checks

log = logging.getLogger("covey.learning.worker")


@lru_cache(maxsize=8)
def _dataset(name: str, seed: int) -> Dataset:
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
    _dataset(data or _network_dataset(task), task.seed)
    warm_up(task.model, task.n_features, task.n_classes, task.image, task.hidden)


def _network_dataset(spec: proto.TaskSpec) -> str:
    """The built-in dataset a spec from the network names; never a path (that would open a local file)."""
    from core.learning.data import BUILTIN
    if spec.partition == "own":
        raise BadRequest("this task trains on each worker's own file: join it with --data FILE")
    if spec.dataset not in BUILTIN:
        raise RefusedByPolicy(f"the task names the dataset {spec.dataset[:80]!r}, which is not built in "
                              f"({', '.join(BUILTIN)}); a worker opens no file a coordinator names, "
                              "only its own --data FILE")
    return spec.dataset


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
    ds = _dataset(_network_dataset(spec), spec.seed)
    idx = _partition_index(spec, partition, n_partitions)
    return ds.X_train[idx], ds.y_train[idx]


def _partition_index(spec: proto.TaskSpec, partition: int, n_partitions: int):
    """The training rows of simulated ``partition`` (cached per dataset and split)."""
    return _partition(spec.dataset, spec.seed, max(n_partitions, 1), spec.partition)[partition]


def _partition_rows(spec: proto.TaskSpec, m: Membership, ann: proto.RoundAnnouncement) -> int | None:
    """Rows of this worker's simulated partition (its loaded, cached index); None for its own file,
    which is never read on the event loop."""
    if m.data is not None or m.partition is None:
        return None
    return len(_partition_index(spec, m.partition, ann.n_partitions))


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
    sa: SecAggWorker | None = None
    shares_in: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerRole:
    """Handles ml.invite / ml.round / ml.sa.* for the tasks this node works on."""

    def __init__(self, service: LearningService) -> None:
        self.service = service
        self.node = service.node
        # Rounds come from the coordinator the user joined under; a bad one is refused and
        # reported, and (as before the one admission step) costs the coordinator no reputation.
        self.admission = Admission(self.node, "ml.round", Capability.LEARN_CONTRIBUTE,
                                   accountable=False, logger=log)
        self.members: dict[str, Membership] = {}
        self._max_params: int | None = None
        self._specs: dict[str, tuple[dict, proto.TaskSpec]] = {}   # task -> (the pinned map, its spec)
        self._rounds: dict[bytes, _RoundWork] = {}
        # joins waiting for the coordinator's reply: its first round may arrive before the reply is
        # handled here (the coordinator counts us in as soon as it answered); it waits for the reply
        self._joining: dict[str, asyncio.Event] = {}
        node = self.node
        node.on_message("ml.invite", self._on_invite)
        node.on_message("ml.round", self._on_round)
        node.on_message("ml.sa.roster", self._on_roster)
        node.on_message("ml.sa.relay", self._on_relay)
        node.on_message("ml.sa.unmask", self._on_unmask)

    # -- persistence
    def load(self) -> None:
        for fields in db.load_memberships(self.node.store):
            self.members[fields["task"]] = Membership(**fields)

    def _save(self, m: Membership) -> None:
        db.save_membership(self.node.store, m)

    # -- the parameter budget
    @property
    def max_params(self) -> int:
        """The largest model (in parameters) this node trains as a worker (read once, then kept:
        :meth:`set_max_params` is its only writer)."""
        if self._max_params is None:
            value = self.node.store.get_setting(MAX_PARAMS_SETTING)
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            self._max_params = value if ok else DEFAULT_MAX_PARAMS
        return self._max_params

    def set_max_params(self, params: int) -> None:
        if isinstance(params, bool) or not isinstance(params, int) or not 1 <= params <= 10**10:
            raise BadRequest("the parameter budget must be a whole number between 1 and 10^10")
        self.node.store.set_setting(MAX_PARAMS_SETTING, params)
        self._max_params = params

    def _spec_of(self, m: Membership) -> proto.TaskSpec:
        """The checked spec of a membership, parsed once per pinned spec map (every round checks it)."""
        cached = self._specs.get(m.task)
        if cached is None or cached[0] is not m.spec:
            while len(self._specs) >= MAX_CACHED_SPECS:
                self._specs.pop(next(iter(self._specs)))
            cached = self._specs[m.task] = (m.spec, proto.TaskSpec.from_dict(m.spec))
        return cached[1]

    def _check_budget(self, task: str, spec: proto.TaskSpec) -> None:
        params, budget = spec.n_params(), self.max_params
        if params > budget:
            raise RefusedByPolicy(f"the model of task {task} has {params:,} parameters, more than this node's "
                                  f"budget of {budget:,}; `covey ml budget {params}` raises the budget")

    # -- invitations and joining
    def _on_invite(self, peer_id: str, body: dict) -> dict:
        task = proto.task_id(body)
        spec = proto.TaskSpec.from_dict(proto.need(body, "spec", dict))
        self.node.peers.check(peer_id, Capability.LEARN_CONTRIBUTE)  # we only work for trusted peers
        if spec.partition != "own":
            _network_dataset(spec)
        m = self.members.get(task)
        if m is not None and m.state == "joined" and (m.coordinator != peer_id or _normal(m.spec) != spec.to_dict()):
            raise RefusedByPolicy(f"this node already works on task {task} under the spec it accepted at join")
        if m is None or m.coordinator != peer_id or m.state != "joined":
            m = Membership(task, peer_id, spec.to_dict(), "left" if m is not None and m.state == "left" else "invited")
            self.members[task] = m
            self._save(m)
        from core import events as ev
        self.node.events.emit(ev.ML_STATE, task=task, role="worker", state=m.state, coordinator=peer_id)
        auto = self.service.auto_join and spec.partition != "own" and m.state == "invited"
        if auto:
            self.service.spawn(self._auto_join(task))
        return {"joined": auto or m.state == "joined"}

    async def _auto_join(self, task: str) -> None:
        try:
            await self.join(task)
        except CoveyError as exc:
            log.warning("auto-join of task %s failed: %s", task, exc)

    async def join(self, task: str, data: str | None = None) -> dict:
        """Join an invited task: the coordinator assigns a partition (or we train on ``data``).

        The spec of the invitation is pinned: the coordinator must confirm
        it, and every later round must carry it unchanged.
        """
        m = self.members.get(task)
        if m is None:
            raise UnknownTask(f"no invitation for task {task!r}: `covey ml status` lists the invitations")
        spec = proto.TaskSpec.from_dict(m.spec)
        self._check_budget(task, spec)
        self.node.peers.check(m.coordinator, Capability.LEARN_CONTRIBUTE)
        await asyncio.to_thread(_prepare, m.spec, data)
        replied = self._joining[task] = asyncio.Event()
        try:
            reply = await self.node.request(m.coordinator, "ml.join", {"task": task, "own_data": bool(data)})
            part = proto.need(reply, "partition", int, optional=True)
            if _normal(proto.need(reply, "spec", dict)) != spec.to_dict():
                raise RefusedByPolicy(f"the coordinator of task {task} answered the join with another spec "
                                      "than the one it invited this node to; not joined")
            m.partition, m.data, m.state = part, data, "joined"
            self._save(m)
        finally:
            replied.set()
            self._joining.pop(task, None)
        from core import events as ev
        self.node.events.emit(ev.ML_STATE, task=task, role="worker", state="joined", partition=part)
        return self.view(m)

    def view(self, m: Membership) -> dict:
        """A membership as ``ml status`` shows it, with the model's size against the budget."""
        try:
            params = proto.TaskSpec.from_dict(m.spec).n_params()
        except CoveyError:
            params = None
        budget = self.max_params
        return {"task": m.task, "role": "worker", "state": m.state, "coordinator": m.coordinator,
                "partition": m.partition, "round": m.last_round, "rounds": m.spec.get("rounds"),
                "accuracy": None, "loss": None, "epsilon": None, "history": [],
                "model": m.spec.get("model"), "params": params, "max_params": budget,
                "within_budget": params is not None and params <= budget,
                "secure_agg": bool(m.spec.get("secure_agg"))}

    # -- policy, on every message from a coordinator
    def _member(self, coordinator: str, task, joining: bool = False) -> Membership:
        """The joined membership of ``task`` under ``coordinator``, whose tier and ban are checked now
        (``joining``: or one whose join request to that coordinator awaits its reply)."""
        m = self.members.get(task) if isinstance(task, str) else None
        in_flight = joining and m is not None and m.state == "invited" and task in self._joining
        if m is None or (m.state != "joined" and not in_flight) or m.coordinator != coordinator:
            raise RefusedByPolicy(f"this node has not joined task {str(task)[:16]} with that coordinator")
        self.node.peers.check(coordinator, Capability.LEARN_CONTRIBUTE)
        return m

    # -- rounds
    def _on_round(self, peer_id: str, envelope: dict) -> dict:
        signer, body = self.admission.open(peer_id, envelope,
                                           authorize=lambda signer, body: self._member(signer, body.get("task"),
                                                                                       joining=True))
        ann = proto.parse_round(body, self.node.settings.max_message, self.node.identity.id)
        m = self._member(peer_id, ann.task, joining=True)
        spec = self._spec_of(m)
        # a round carrying exactly the pinned spec map needs no normalising (equal maps normalise alike)
        if ann.spec != m.spec and _normal(ann.spec) != spec.to_dict():
            raise RefusedByPolicy(f"round {ann.round} of task {ann.task} carries another spec than the one "
                                  "this node accepted at join")
        self._check_budget(ann.task, spec)
        if ann.aggregator is not None and ann.aggregator not in spec.aggregators:
            raise RefusedByPolicy(f"round {ann.round} of task {ann.task} names an aggregator that is not one of "
                                  "the task's aggregators this node accepted at join")
        if spec.secure_agg != (ann.secagg is not None):
            raise RefusedByPolicy(f"task {ann.task} was joined {'with' if spec.secure_agg else 'without'} secure "
                                  f"aggregation; round {ann.round} is {'not ' if spec.secure_agg else ''}secure")
        work = _RoundWork(ann)
        reply: dict = {"ok": True}
        if ann.secagg is not None:
            from core.learning.secagg import SecAggParams, SecAggWorker
            params = SecAggParams.from_dict(ann.secagg)
            if params.round_id != ann.round_id or params.dim != spec.n_params():
                raise MalformedMessage("the secure-aggregation parameters do not fit this round's model")
            work.sa = sa = SecAggWorker(self.node.identity.id, params)
            reply["keys"] = sa_roster.sign_keys(self.node.identity, ann.task, ann.round_id, sa.advertise())
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
            replied = self._joining.get(ann.task)
            if replied is not None:   # the round came first: train once the join reply set our partition
                try:
                    await asyncio.wait_for(replied.wait(), ann.deadline)
                except asyncio.TimeoutError:
                    log.warning("task %s round %d: the join reply never came", ann.task, ann.round)
                    return
                self._member(m.coordinator, ann.task)   # the join may have failed
            if offload.trains_inline(spec, _partition_rows(spec, m, ann)):
                result, delta = self._train(m, spec, ann)
            else:
                result, delta = await asyncio.to_thread(self._train, m, spec, ann)
            # The count is capped by the announced cap: a larger own file does not outweigh the others.
            n_examples = max(1, min(result.n_examples, ann.weight_cap))
            body = {"task": ann.task, "round": ann.round, "round_id": ann.round_id,
                    "n_examples": n_examples, "loss": result.loss}
            sa = work.sa
            if sa is not None:
                await asyncio.wait_for(work.shares_in.wait(), ann.deadline)
                weight = 1.0 if spec.dp else n_examples / ann.weight_cap
                body["masked"] = await asyncio.to_thread(sa.masked_input, delta, weight)
            else:
                from core.learning.tensors import encode
                body["weights"] = await offload.run(encode, result.weights, params=spec.n_params())
            self._member(m.coordinator, ann.task)  # the user may have lowered the coordinator meanwhile
            envelope = seal(self.node.identity, "ml.update", body)
            # two levels: the update goes to the group's aggregator the round names (one the spec lists)
            to, kind = (ann.aggregator, "ml.agg.update") if ann.aggregator else (m.coordinator, "ml.update")
            reply = await self.node.request(to, kind, envelope, timeout=ann.deadline + 30)
            m.last_round = ann.round
            db.save_last_round(self.node.store, m.task, m.last_round)
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
        wspec = weight_spec(spec.model, spec.n_features, spec.n_classes, spec.image, spec.hidden)
        global_w = decode(ann.weights, wspec, self.node.settings.max_message)
        X, y = local_data(spec, m.partition, ann.n_partitions, m.data)
        if ann.attack == "label_flip":
            y = flip_labels(y, spec.n_classes)
        seed = (spec.seed * 1_000_003 + ann.round * 1009 + (m.partition or 0) * 7 + ann.attempt) % 2**31
        cfg = TrainConfig(model=spec.model, epochs=spec.epochs, lr=spec.lr, batch=spec.batch,
                          prox_mu=spec.prox_mu, seed=seed, dp_clip=spec.dp_clip, dp_noise=spec.dp_noise,
                          hidden=spec.hidden)
        result = train_local(global_w, X, y, cfg, spec.n_features, spec.n_classes, spec.image)
        if ann.attack in ("sign_flip", "noise"):
            result.weights = apply_attack(ann.attack, global_w, result.weights, np.random.default_rng(seed))
        delta = flatten(result.weights) - flatten(global_w)
        return result, delta

    # -- secure aggregation phases
    def _work(self, peer_id: str, body: dict) -> tuple[_RoundWork, SecAggWorker, Membership]:
        """The secure-aggregation round ``body`` names, its worker state, and the membership it runs under."""
        proto.task_id(body)
        work = self._rounds.get(proto.need(body, "round_id", bytes))
        sa = work.sa if work is not None else None
        if work is None or sa is None or work.ann.task != body["task"]:
            raise MalformedMessage("no secure-aggregation round with that id here")
        m = self.members.get(work.ann.task)
        # two levels: the group's aggregator the round names runs the group's secure aggregation
        collector = work.ann.aggregator or (m.coordinator if m is not None else None)
        if m is None or peer_id != collector:
            raise RefusedByPolicy("secure-aggregation messages of this round come only from whoever "
                                  "collects its updates")
        return work, sa, self._member(m.coordinator, work.ann.task)

    def _on_roster(self, peer_id: str, body: dict) -> dict:
        work, sa, m = self._work(peer_id, body)
        roster = proto.need(body, "roster", dict)
        spec = proto.TaskSpec.from_dict(m.spec)
        sa_roster.check_roster(roster, proto.need(body, "signed", dict), me=self.node.identity.id,
                               task=m.task, round_id=work.ann.round_id, known=self._vouched,
                               minimum=proto.SECAGG_MIN_ROSTER if work.ann.aggregator else spec.round_minimum)
        return {"blobs": sa.share_keys(roster)}

    def _vouched(self, peer_id: str) -> bool:
        """Whether this node's user trusts ``peer_id`` as a learning participant (CORE/SANDBOX, not banned)."""
        try:
            self.node.peers.check(peer_id, Capability.LEARN_CONTRIBUTE)
        except CoveyError:
            return False
        return True

    def _on_relay(self, peer_id: str, body: dict) -> dict:
        work, sa, _ = self._work(peer_id, body)
        sa.receive_shares(proto.need(body, "blobs", dict))
        work.shares_in.set()
        return {"ok": True}

    def _on_unmask(self, peer_id: str, body: dict) -> dict:
        _, sa, _ = self._work(peer_id, body)
        return sa.unmask(proto.need(body, "survivors", list), proto.need(body, "dropped", list))


def _normal(spec: dict) -> dict:
    """A spec map in its checked, normalised form (so equal specs compare equal)."""
    return proto.TaskSpec.from_dict(dict(spec)).to_dict()
