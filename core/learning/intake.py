"""Taking in workers' updates for one open round: the admission step and the checks on each update.

Shared by the coordinator of a task (one level) and by a group's aggregator
(two levels): both admit ``ml.update`` through the same :class:`~core.admission.Admission`
(authorise, verify, replay) and run the same checks (the open round, no
duplicate, the weight cap, decoding, validation on the held-out set).
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.admission import Admission, Reason, Rejection
from core.errors import BadRequest, MalformedMessage, NotAdmitted, RefusedByPolicy, UpdateRejected

from . import offload
from . import protocol as proto

if TYPE_CHECKING:
    from .data import Dataset
    from .secagg import SecAggCoordinator
    from .tensors import Spec

# Pre-merge validation: an update may raise the held-out loss of the global
# model by at most (factor, margin); SANDBOX peers get the stricter pair.
log = logging.getLogger("covey.learning.intake")

TOLERANCE = {"core": (1.5, 0.5), "sandbox": (1.1, 0.1)}


@dataclass
class OpenRound:
    """One open round (or, on an aggregator, one group's share of it)."""
    number: int
    attempt: int
    round_id: bytes
    participants: set[str]
    deadline_at: float
    started: float
    weight_cap: int = 1
    why: str | None = None   # why the round cannot close, when known
    ref_loss: float = math.inf
    slots: dict[str, int] = field(default_factory=dict)
    # peer -> (flat weights, or None where the update stayed in a group or secure aggregation,
    # n_examples, train loss, norm)
    accepted: dict[str, tuple[np.ndarray | None, int, float, float]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    reasons: Counter = field(default_factory=Counter)
    closed: bool = False
    sa: SecAggCoordinator | None = None
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    # Two levels: aggregator -> its group's workers, the groups' forwarded results (aggregator ->
    # what the coordinator keeps of its partial) and the aggregators lost this round.
    groups: dict[str, list[str]] = field(default_factory=dict)
    partials: dict[str, dict] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)

    def check_all_in(self) -> None:
        if self.groups:
            waiting = set(self.groups) - set(self.partials) - self.lost
        else:
            waiting = self.participants - self.dropped - set(self.accepted) - set(self.rejected)
        if not waiting:
            self.all_in.set()


class UpdateIntake:
    """Admits and checks ``ml.update`` for the open round ``current`` of task ``id``.

    The class using it provides ``node``, ``id``, ``spec``, ``round`` (the last
    closed round), ``current``, ``participants``, ``admission``, ``rejections``,
    ``data``/``wspec``/``weights`` (held-out data, weight spec, global weights)
    and ``_participant(peer)``.
    """
    node: Any
    id: str
    spec: proto.TaskSpec
    round: int
    current: OpenRound | None
    participants: dict[str, int]
    admission: Admission
    rejections: Counter
    data: Dataset | None
    wspec: Spec | None
    weights: dict[str, np.ndarray] | None

    def _loaded(self) -> tuple[Dataset, Spec, dict[str, np.ndarray]]:
        """What :meth:`_prepare` loaded: held-out data, weight spec, global weights (rounds run after it)."""
        if self.data is None or self.wspec is None or self.weights is None:
            raise RuntimeError(f"task {self.id} is used before its data and model were loaded")
        return self.data, self.wspec, self.weights

    # -- updates ------------------------------------------------------------------
    async def on_update(self, peer_id: str, envelope) -> dict:
        """Admit (authorise, verify, validate) and keep one worker's update, or reject it with a reason."""
        rs = self.current
        try:
            admitted = await self.admission.admit_async(
                peer_id, envelope, authorize=self._authorize_update,
                validate=lambda signer, body: self._validate_update(rs, signer, body), task=self.id)
        except NotAdmitted as exc:
            return self._rejected(rs, exc.rejection)
        assert rs is not None  # _validate_update admits nothing while no round is open
        rs.accepted[admitted.signer] = admitted.value
        rs.check_all_in()
        return {"accepted": True, "reason": None}

    def _authorize_update(self, signer: str, body: dict) -> None:
        """Before any signature check or replay memory: the signer (= sender) takes part and may contribute
        (the admission then checks its LEARN_CONTRIBUTE capability)."""
        if not self._participant(signer):
            raise UpdateRejected("not_participant", f"{signer[:12]} is not a participant of task {self.id}")
        if self.node.peers.tier_of(signer).value not in self.spec.tiers:
            raise RefusedByPolicy(f"task {self.id} takes updates only from tiers {', '.join(self.spec.tiers)}")

    def _participant(self, peer: str) -> bool:
        rs = self.current
        return peer in self.participants or (rs is not None and peer in rs.participants)

    async def _validate_update(self, rs: OpenRound | None, signer: str, body: dict) -> tuple:
        """The update fits the open round (secure aggregation: takes its masked vector); else raises.

        Returns what the round keeps: ``(flat weights, n_examples, loss, norm)``.
        """
        upd = proto.parse_update(body)
        if upd.task != self.id:
            raise MalformedMessage("update for another task")
        if rs is None or upd.round_id != rs.round_id or upd.round != rs.number:
            raise UpdateRejected("late" if upd.round <= self.round + 1 else "wrong_round",
                                 f"update for round {upd.round}, which is not open")
        if rs.closed:
            raise UpdateRejected("late", f"round {rs.number} closed at its deadline")
        if rs.groups:
            raise UpdateRejected("wrong_aggregator", f"round {rs.number} takes updates through the group "
                                                     "aggregators the announcement names")
        if signer in rs.accepted or signer in rs.rejected:
            raise UpdateRejected("duplicate", "a second update for the same round")
        if upd.n_examples > rs.weight_cap:
            raise UpdateRejected("example_count", f"{upd.n_examples} examples claimed; this round counts at "
                                                  f"most {rs.weight_cap} per update (the announced weight cap)")
        if rs.sa is not None:
            if upd.masked is None:
                raise MalformedMessage("this round uses secure aggregation: send a masked vector")
            try:
                rs.sa.add_masked_input(signer, upd.masked)
            except BadRequest as exc:
                raise UpdateRejected("malformed", str(exc)) from None
            return None, upd.n_examples, upd.loss, float("nan")
        if upd.weights is None:
            raise MalformedMessage("this round does not use secure aggregation: send weights")
        strict = self.node.peers.tier_of(signer).value
        flat, norm, vloss = await offload.run(self._check_update, upd.weights, rs.ref_loss, strict,
                                              params=self.spec.n_params())
        if rs.closed:
            raise UpdateRejected("late", f"round {rs.number} closed at its deadline")
        return flat, upd.n_examples, upd.loss, norm

    def _check_update(self, data: bytes, ref_loss: float, tier: str):
        """Blocking: decode with shape/dtype/finiteness checks (UpdateRejected), then validate on the held-out set."""
        from core.learning.tensors import decode, flatten
        _, wspec, global_weights = self._loaded()
        expected = 4 * sum(int(np.prod(s)) for s, _ in wspec.values())
        weights = decode(data, wspec, expected + 64 * 1024)
        flat = flatten(weights)
        norm = float(np.linalg.norm((flat - flatten(global_weights)).astype(np.float64)))
        vloss = math.nan
        if self.spec.validate:
            vloss, _ = self._evaluate(weights, True)
            factor, margin = TOLERANCE.get(tier, TOLERANCE["sandbox"])
            if not math.isfinite(vloss) or vloss > ref_loss * factor + margin:
                raise UpdateRejected("validation", f"held-out loss {vloss:.3f} exceeds what this {tier} peer "
                                                   f"may reach ({ref_loss:.3f} x {factor} + {margin})")
        return flat, norm, vloss

    def _reject(self, rs: OpenRound | None, peer_id: str, code: str, message: str) -> dict:
        """Reject an admitted update found wrong later (e.g. an outlier at aggregation)."""
        rejection = self.admission.reject(peer_id, Reason.INVALID, code, message, task=self.id)
        return self._rejected(rs, rejection)

    def _rejected(self, rs: OpenRound | None, rejection: Rejection) -> dict:
        """Count a rejection (reported by the admission step) in the task and its round; the reply."""
        peer_id, reason = rejection.peer, rejection.code
        self.rejections[reason] += 1
        if rs is not None and not rs.closed and peer_id in rs.participants and peer_id not in rs.accepted:
            rs.rejected.setdefault(peer_id, reason)
            rs.reasons[reason] += 1
            rs.check_all_in()
        return {"accepted": False, "reason": reason, "message": rejection.message[:300]}

    def _settle(self, rs: OpenRound, outliers: dict[str, str]) -> None:
        """After aggregation: reject the outliers, raise the reputation of every other accepted sender."""
        for peer, reason in outliers.items():
            self._reject(rs, peer, reason, "update far from the robust aggregate")
        self.node.peers.record_outcomes([p for p in rs.accepted if p not in outliers], True, "ml update accepted")

    @staticmethod
    def _worker_entries(rs: OpenRound, kept: set[str], outliers: dict[str, str]) -> dict[str, dict]:
        """Per participant, what became of its update this round (a round record's ``workers``)."""
        workers: dict[str, dict] = {}
        for peer in sorted(rs.participants):
            entry: dict[str, object] = {"slot": rs.slots.get(peer)}
            if peer in rs.accepted:
                _, n, wloss, norm = rs.accepted[peer]
                entry.update(n_examples=n, train_loss=num(wloss), norm=num(norm),
                             used=peer in kept, status=outliers.get(peer, "accepted"))
            elif peer in rs.rejected:
                entry.update(status="rejected", reason=rs.rejected[peer])
            else:
                entry.update(status="missing")
            workers[peer] = entry
        return workers

    def _evaluate(self, weights: dict[str, np.ndarray], validation: bool) -> tuple[float, float]:
        from core.learning.train import evaluate
        (d, _, _), spec = self._loaded(), self.spec
        X, y = (d.X_test[::2], d.y_test[::2]) if validation else (d.X_test, d.y_test)
        return evaluate(weights, X, y, spec.model, spec.n_features, spec.n_classes, spec.image, spec.hidden)

    def _scores(self, weights: dict[str, np.ndarray]) -> tuple[float, float, float]:
        """(loss, accuracy) on the whole held-out set and the loss on its validation half (what
        ``_evaluate(weights, True)`` gives), from one forward pass."""
        from core.learning.train import held_out_scores
        (d, _, _), spec = self._loaded(), self.spec
        return held_out_scores(weights, d.X_test, d.y_test, spec.model, spec.n_features, spec.n_classes,
                               spec.image, spec.hidden)


def num(x: float | None):
    """A finite number rounded for a record, else None."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
