"""The coordinator side of one training task: rounds, verification, validation, aggregation, checkpoints.

A round: pick the joined workers that are connected and still allowed,
send each a sealed ``ml.round`` with the global weights, collect sealed
``ml.update`` replies until all are in or the deadline passes, and close the
round if at least ``min_clients`` updates were accepted (otherwise retry the
same round number with a fresh round id). Every rejected update is answered
with its reason, counted, and lowers the sender's reputation (except a stale
or replayed copy, which may be anyone resending an honest peer's message, and
a sender that is not a participant at all); accepted ones raise it. An update
is authorised (its signer is its sender and a participant allowed to
contribute) before its signature or the replay memory is touched. Example
counts are capped by the announced weight cap, and an aggregate whose held-out
loss is wildly worse than the previous model's is not committed (the round is
retried; not under differential privacy, whose noise may do that honestly). Heavy steps (decoding, validation, aggregation, evaluation,
checkpointing) run in threads so the node stays responsive.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from core import events as ev
from core.admission import Admission, Reason
from core.errors import BadRequest, CoveyError, RefusedByPolicy
from core.peers import Capability
from core.signed import seal

from . import db, offload
from . import protocol as proto
from .groups import GROUP_GRACE, GroupRounds, group_records, group_worker_entries
from .intake import OpenRound, UpdateIntake
from .secure_round import SecureRounds

if TYPE_CHECKING:  # numpy/torch-heavy modules, imported when a task runs
    from .data import Dataset
    from .privacy import PrivacyAccountant
    from .secagg import SecAggCoordinator, SecAggParams
    from .tensors import Spec

log = logging.getLogger("covey.learning.coordinator")

ACK_TIMEOUT = 10.0
# An aggregate may raise the held-out loss of the previous global model by at most
# (factor, margin); beyond that the round is not committed but retried.
AGGREGATE_TOLERANCE = (2.0, 1.0)


class CoordinatorTask(UpdateIntake, GroupRounds, SecureRounds):
    """One task this node coordinates."""

    def __init__(self, service, task_id: str, spec: proto.TaskSpec, state: str = "running",
                 created: float | None = None):
        from core.learning.checkpoint import CheckpointStore
        self.service = service
        self.node = service.node
        self.id = task_id
        self.spec = spec
        self.state = state
        self.created = created or time.time()
        self.error: str | None = None
        self.ckpt = CheckpointStore(self.node.home / "ml" / task_id)
        # The one admission step for updates; a non-participant has no stake here, so only
        # participants' faults cost reputation (stale, replayed or unauthorised copies never do).
        self.admission = Admission(self.node, "ml.update", Capability.LEARN_CONTRIBUTE,
                                   accountable=self._participant, label="ml update",
                                   words={Reason.NOT_SENDER: "not_participant"}, logger=log)
        self.verifier = self.admission.verifier
        self.participants: dict[str, int] = {}      # peer -> slot (join order; partition index)
        self.invited: set[str] = set()
        self.history: list[dict] = []
        self.rejections: Counter = Counter()
        self.round = 0
        self.weights: dict[str, np.ndarray] | None = None
        self.current: OpenRound | None = None
        self.accountant: PrivacyAccountant | None = None
        self.data: Dataset | None = None      # held-out data, weight spec and weights: set by _prepare
        self.wspec: Spec | None = None
        self._runner: asyncio.Task | None = None
        self._spec_dict = spec.to_dict()  # sent with every announcement; the spec never changes
        # The current global model's held-out loss and its loss on the validation half (updates are
        # held to it): measured by the last commit's check, else by _global_losses
        self._losses: tuple[float, float] | None = None
        self._init_groups()

    # -- persistence ---------------------------------------------------------
    def save(self) -> None:
        db.save_task(self.node.store, self.id, self.spec.to_dict(), self.state, self.error, self.created)

    def load_participants(self) -> None:
        self.participants.update(db.load_participants(self.node.store, self.id))

    def _set_state(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        self.save()
        self.node.events.emit(ev.ML_STATE, task=self.id, role="coordinator", state=state,
                              round=self.round, rounds=self.spec.rounds, error=error)

    # -- lifecycle -------------------------------------------------------------
    def launch(self) -> None:
        self._runner = self.service.spawn(self._run())
        self._unlisten = self.node.events.on(ev.PEER_DISCONNECTED, self._on_disconnect)

    def _on_disconnect(self, event) -> None:
        """A participant that disconnects mid-round will not answer: stop waiting for it
        (the round closes with the others instead of at its deadline)."""
        rs, peer = self.current, event.data.get("peer")
        if peer in self.spec.aggregators:
            self._lose_aggregator(peer)
        if rs is not None and not rs.groups and not rs.closed and peer in rs.participants:
            if peer not in rs.accepted and peer not in rs.rejected:
                rs.dropped.add(peer)
                rs.check_all_in()

    async def halt(self, state: str | None = None) -> None:
        """Stop the round loop; with ``state`` record it (``stopped``), else leave it to resume."""
        unlisten = getattr(self, "_unlisten", None)
        if unlisten is not None:
            unlisten()
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                log.debug("task %s loop cancelled", self.id)
        if state is not None and self.state == "running":
            self._set_state(state)

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(self._prepare)
            await self.invite_all()
            attempt = 0
            while self.round < self.spec.rounds:
                record = await self._one_round(self.round + 1, attempt)
                if record is None:
                    attempt += 1
                    await asyncio.sleep(min(1.0, self.spec.deadline / 4))
                    continue
                attempt = 0
            self._set_state("done")
        except asyncio.CancelledError:
            raise
        except CoveyError as exc:
            log.error("task %s failed: %s", self.id, exc)
            self._set_state("failed", str(exc))
        except Exception as exc:  # a bug must not leave the task "running" forever
            log.exception("task %s failed", self.id)
            self._set_state("failed", f"internal error: {exc}")

    def _prepare(self) -> None:
        """Blocking: load the held-out data, and the newest checkpoint (or the initial model)."""
        from core.learning.models import build_model, get_weights, weight_spec
        from .worker import _dataset
        spec = self.spec
        self.data = _dataset(spec.dataset, spec.seed)
        self.wspec = wspec = weight_spec(spec.model, spec.n_features, spec.n_classes, spec.image, spec.hidden)
        latest = self.ckpt.latest()
        if latest is None:
            model = build_model(spec.model, spec.n_features, spec.n_classes, spec.image, seed=spec.seed,
                                hidden=spec.hidden)
            self.weights = get_weights(model)
            self.ckpt.save(0, self.weights, {"round": 0})
        else:
            self.round, stored, _ = latest
            missing = [k for k in wspec if k not in stored]
            if missing:
                raise BadRequest(f"checkpoint of round {self.round} does not fit the model (missing {missing})")
            self.weights = {k: stored[k] for k in wspec}  # safetensors sorts names; keep model order
            self.history = [h["meta"] for h in self.ckpt.history() if 0 < h["round"] <= self.round]
            self.rejections = Counter()
            for h in self.history:
                self.rejections.update(h.get("reasons", {}))
        if spec.dp_noise is not None:  # spec.dp
            from core.learning.privacy import PrivacyAccountant
            self.accountant = PrivacyAccountant(spec.dp_noise, 1.0, spec.dp_delta)
            self.accountant.step(self.round)

    # -- participants ----------------------------------------------------------
    def _allowed(self, peer: str) -> bool:
        try:
            self.node.peers.check(peer, Capability.LEARN_CONTRIBUTE)
        except CoveyError:
            return False
        # a group aggregator is not also a worker of the task
        return self.node.peers.tier_of(peer).value in self.spec.tiers and peer not in self.spec.aggregators

    def _uninvited(self) -> list[str]:
        return [p for p in self.node.connected_peers()
                if p not in self.participants and p not in self.invited and self._allowed(p)]

    async def invite_all(self) -> None:
        await asyncio.gather(*(self.invite(p) for p in self._uninvited()))

    async def invite(self, peer: str) -> None:
        self.invited.add(peer)
        try:
            await self.node.request(peer, "ml.invite", {"task": self.id, "spec": self.spec.to_dict()},
                                    timeout=ACK_TIMEOUT)
        except CoveyError as exc:
            log.info("task %s: invitation to %s failed: %s", self.id, peer[:12], exc)

    def on_join(self, peer_id: str, body: dict) -> dict:
        self.node.peers.check(peer_id, Capability.LEARN_CONTRIBUTE)
        if self.node.peers.tier_of(peer_id).value not in self.spec.tiers:
            raise RefusedByPolicy(f"task {self.id} takes updates only from tiers {', '.join(self.spec.tiers)}")
        if peer_id in self.spec.aggregators:
            raise RefusedByPolicy(f"{peer_id[:12]} aggregates a group of task {self.id}; it is not also a worker")
        if self.state != "running":
            raise RefusedByPolicy(f"task {self.id} is {self.state}")
        own = bool(body.get("own_data")) or self.spec.partition == "own"
        if peer_id not in self.participants:
            slot = len(self.participants)
            if not own and slot >= max(self.spec.clients, 1):
                raise RefusedByPolicy(f"task {self.id} already has its {self.spec.clients} simulated clients")
            self.participants[peer_id] = slot
            db.add_participant(self.node.store, self.id, peer_id, slot)
            self.node.events.emit(ev.ML_STATE, task=self.id, role="coordinator", state=self.state,
                                  joined=peer_id, participants=len(self.participants))
        slot = self.participants[peer_id]
        return {"partition": None if own else slot, "spec": self.spec.to_dict()}

    def _eligible(self) -> list[str]:
        connected = set(self.node.connected_peers())
        return sorted(p for p in self.participants if p in connected and self._allowed(p))

    # -- one round -------------------------------------------------------------
    async def _one_round(self, number: int, attempt: int) -> dict | None:
        spec = self.spec
        wait_until = time.monotonic() + spec.deadline
        while len(self._eligible()) < spec.round_minimum and time.monotonic() < wait_until:
            for peer in self._uninvited():  # e.g. a peer whose tier was raised after it connected
                self.invited.add(peer)
                self.service.spawn(self.invite(peer))
            await asyncio.sleep(0.1)
        eligible = self._eligible()
        if len(eligible) < spec.round_minimum:
            self._retry(number, attempt, f"only {len(eligible)} eligible workers connected, "
                                         f"{spec.round_minimum} needed")
            return None
        from core.learning.tensors import encode, flatten
        _, _, weights = self._loaded()
        now = time.monotonic()
        grace = GROUP_GRACE if spec.aggregators else 0.0
        rs = OpenRound(number, attempt, os.urandom(proto.ROUND_ID_BYTES), set(eligible),
                    now + spec.deadline + grace, now, weight_cap=self._weight_cap(),
                    slots={p: self.participants[p] for p in eligible})
        size = spec.n_params()
        blob = await offload.run(encode, weights, params=size)
        global_flat = flatten(weights)
        if spec.validate:
            rs.ref_loss = (await self._global_losses())[1]
        self.current = rs
        announced = eligible
        aggregator_of: dict[str, str] = {}
        if spec.aggregators:
            aggregator_of = await self._open_groups(rs, blob)
            if not aggregator_of:
                self._fail(rs, "no aggregator is connected, reaches a worker and took the round")
                return None
            announced = [p for p in eligible if p in aggregator_of]
        secagg: dict[str, SecAggParams] = {}
        if spec.secure_agg:  # with groups, each group is its own secure-aggregation round
            from core.learning.secagg import SecAggParams, default_threshold
            for p in announced:
                n = len(rs.groups[aggregator_of[p]]) if aggregator_of else len(announced)
                secagg[p] = SecAggParams(round_id=rs.round_id, threshold=default_threshold(n),
                                         dim=len(global_flat))
        envelope = self._announcement(rs, blob, announced, secagg, aggregator_of)
        acks = await asyncio.gather(*(self._announce(p, rs, envelope) for p in announced))
        keys = {p: a.get("keys") for p, a in zip(announced, acks, strict=True) if isinstance(a, dict)}
        rs.dropped |= {p for p, a in zip(announced, acks, strict=True) if a is None}
        sa: SecAggCoordinator | None = None
        if spec.secure_agg and rs.groups:
            await self._send_group_keys(rs, keys)
        elif spec.secure_agg:
            sa = await self._secagg_setup(rs, secagg[announced[0]], keys, spec.round_minimum)
            if sa is None:
                self._fail(rs, "too few workers for secure aggregation")
                return None
        rs.check_all_in()
        try:
            await asyncio.wait_for(rs.all_in.wait(), max(0.0, rs.deadline_at - time.monotonic()))
        except asyncio.TimeoutError:
            late = rs.participants - rs.dropped - set(rs.accepted) - set(rs.rejected)
            log.info("task %s round %d: deadline passed; %d worker(s) missing", self.id, number, len(late))
        rs.closed = True
        if rs.groups:
            vector, kept = await offload.run(self._combine_groups, rs, global_flat, params=size)
        elif sa is not None:  # spec.secure_agg
            vector, kept = await self._secagg_finish(rs, sa, global_flat)
        else:
            if len(rs.accepted) < spec.min_clients:
                self._fail(rs, f"{len(rs.accepted)} updates accepted, {spec.min_clients} needed")
                return None
            vector, kept = await offload.run(self._aggregate, rs, global_flat, params=size)
        if vector is None:
            self._fail(rs, rs.why or "secure aggregation could not unmask the sum")
            return None
        return await self._commit(rs, vector, kept)

    async def _global_losses(self) -> tuple[float, float]:
        """(held-out loss, validation-half loss) of the current global model, measured in one pass
        unless the last commit's check already did."""
        if self._losses is None:
            _, _, weights = self._loaded()
            loss, _, half = await offload.run(self._scores, weights, params=self.spec.n_params())
            self._losses = (loss, half)
        return self._losses

    def _retry(self, number: int, attempt: int, why: str) -> None:
        log.warning("task %s round %d (attempt %d) will be retried: %s", self.id, number, attempt + 1, why)
        self.node.events.emit(ev.ML_STATE, task=self.id, role="coordinator", state="running",
                              round=self.round, retry=number, attempt=attempt, reason=why)

    def _fail(self, rs: OpenRound, why: str) -> None:
        """Close the round without committing it; it is retried."""
        rs.closed = True
        self.current = None
        self._retry(rs.number, rs.attempt, why)

    def _weight_cap(self) -> int:
        """The most examples one update may count for: twice a simulated partition's size."""
        data, _, _ = self._loaded()
        return max(1, math.ceil(len(data.y_train) / max(self.spec.clients, 1)) * 2)

    def _announcement(self, rs: OpenRound, blob: bytes, announced: list[str], secagg: dict[str, SecAggParams],
                      aggregator_of: dict[str, str]) -> dict:
        """The round's one sealed ``ml.round``: what every worker shares, and per worker its entry
        (partition, simulated attack, secure-aggregation parameters, group aggregator). Signed once
        for all workers: with 50 workers, a signature per worker was most of the fan-out's time."""
        spec = self.spec
        parts = max(spec.clients, 1)
        assign = {}
        for peer in announced:
            slot = rs.slots[peer]
            params = secagg.get(peer)
            assign[peer] = {"partition": slot if slot < parts and spec.partition != "own" else None,
                            "attack": spec.attack if spec.attack and slot < spec.attackers else None,
                            "secagg": params.to_dict() if params is not None else None,
                            "aggregator": aggregator_of.get(peer)}
        body = {"task": self.id, "round": rs.number, "attempt": rs.attempt, "round_id": rs.round_id,
                "weights": blob, "deadline": spec.deadline, "n_partitions": parts,
                "weight_cap": rs.weight_cap, "spec": self._spec_dict, "assign": assign}
        return seal(self.node.identity, "ml.round", body)

    async def _announce(self, peer: str, rs: OpenRound, envelope: dict) -> dict | None:
        try:
            return await self.node.request(peer, "ml.round", envelope, timeout=min(ACK_TIMEOUT, self.spec.deadline))
        except CoveyError as exc:
            log.info("task %s round %d: worker %s did not take the round: %s", self.id, rs.number,
                     peer[:12], exc)
            return None

    # -- aggregation -----------------------------------------------------------------
    def _aggregate(self, rs: OpenRound, global_flat: np.ndarray):
        """Blocking: run the aggregator; mark far-off updates of robust rules as outliers."""
        from core.learning.compose import aggregate_flats
        peers = sorted(rs.accepted)
        flats = [f for f in (rs.accepted[p][0] for p in peers) if f is not None]
        counts = [1 if self.spec.dp else rs.accepted[p][1] for p in peers]
        vector, kept, outliers = aggregate_flats(self.spec.aggregator, flats, counts, self.spec.f(len(peers)),
                                                 global_flat)
        return vector, ({peers[i] for i in kept}, {peers[i]: "outlier" for i in outliers})

    async def _commit(self, rs: OpenRound, vector: np.ndarray, kept) -> dict | None:
        """Check the aggregate against the previous model on the held-out set, then make it the global model."""
        from core.learning.tensors import unflatten
        kept_set, outliers = kept
        _, wspec, weights = self._loaded()
        candidate = unflatten(np.asarray(vector, dtype=np.float32), wspec)
        size = self.spec.n_params()
        previous = (await self._global_losses())[0]
        loss, acc, half = await offload.run(self._scores, candidate, params=size)
        factor, margin = AGGREGATE_TOLERANCE
        # Under differential privacy the noise the user asked for can raise an honest
        # aggregate's loss by any amount; there the weight cap and the clip bound each
        # contribution instead (secure aggregation checks the clip on the unmasked sum).
        wild = not self.spec.dp and math.isfinite(previous) and loss > previous * factor + margin
        if not math.isfinite(loss) or wild:
            self._fail(rs, f"the aggregate's held-out loss {loss:.3f} is far above the previous "
                           f"model's {previous:.3f} (at most x{factor} + {margin}); not committed")
            return None
        self.weights, self._losses = candidate, (loss, half)
        if rs.groups:  # the aggregators admitted, settled and reported each update
            workers = group_worker_entries(rs)
        else:
            self._settle(rs, outliers)
            workers = self._worker_entries(rs, kept_set, outliers)
        epsilon = None
        if self.accountant is not None:
            self.accountant.step()
            epsilon = round(self.accountant.epsilon(), 6)
        n_out = len(outliers)
        if n_out:
            rs.reasons["outlier"] += n_out
        record = proto.RoundRecord(
            round=rs.number, accuracy=round(acc, 6), loss=round(loss, 6),
            accepted=len(rs.accepted) - n_out, rejected=len(rs.rejected) + n_out,
            missing=sum(1 for w in workers.values() if w["status"] == "missing"),
            reasons=dict(rs.reasons), seconds=round(time.monotonic() - rs.started, 4),
            epsilon=epsilon, attempt=rs.attempt, workers=workers,
            secure_agg=self.spec.secure_agg, at=time.time(), groups=group_records(rs)).to_dict()
        await asyncio.to_thread(self.ckpt.save, rs.number, self.weights, record)
        self.round = rs.number
        self.history.append(record)
        self.current = None
        self.node.events.emit(ev.ML_ROUND, task=self.id, rounds=self.spec.rounds, **record)
        return record


    async def _secagg_finish(self, rs: OpenRound, sa: SecAggCoordinator, global_flat: np.ndarray):
        unmasked = await self._secagg_unmask(rs, sa)
        if unmasked is None:
            return None, None
        total, survivors = unmasked
        vector = global_flat + total / np.float32(sa.total_weight)
        return vector, (set(survivors), {})

    # -- view --------------------------------------------------------------------------
    def _workers_view(self) -> dict:
        """Who a round can use now: joined workers that are connected and allowed (``ready``), the
        connected peers allowed to contribute that have not joined (``not_joined``: invited, or about
        to be), and the round's minimum (``needed``)."""
        waiting = [p for p in self.node.connected_peers() if p not in self.participants and self._allowed(p)]
        return {"ready": len(self._eligible()), "not_joined": len(waiting), "needed": self.spec.round_minimum,
                "round_open": self.current is not None and not self.current.closed}

    def status(self) -> dict:
        last = self.history[-1] if self.history else {}
        recent = [h["seconds"] for h in self.history[-5:]]
        eta = (sum(recent) / len(recent)) * (self.spec.rounds - self.round) if recent else None
        return {"task": self.id, "role": "coordinator", "state": self.state, "round": self.round,
                "rounds": self.spec.rounds, "accuracy": last.get("accuracy"), "loss": last.get("loss"),
                "epsilon": last.get("epsilon") if self.spec.dp else None,
                "history": [proto.round_view(h) for h in self.history],
                "participants": len(self.participants), "rejections": dict(self.rejections),
                **self._workers_view(),
                "eta_seconds": None if eta is None or self.state != "running" else round(eta, 1),
                "error": self.error, "spec": self.spec.to_dict(), "created": self.created}
