"""The coordinator's side of two-level aggregation: open a round's groups, admit the partials, combine.

A task that names ``aggregators`` (peers this coordinator holds as CORE)
splits each round's workers into groups, one per aggregator that is
connected and takes the round (``ml.agg.round``); a worker's announcement
names its group's aggregator, which admits and checks the worker's update
exactly as the coordinator does one level down (:mod:`core.learning.intake`)
and forwards one signed ``ml.agg.partial``. An aggregator that disconnects
before its partial is in is lost for the round (its workers count as missing;
the round closes with the other groups if enough updates remain, else it is
retried) and the next round deals its workers to the aggregators still there.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.admission import Admission
from core.errors import CoveyError, MalformedMessage, NotAdmitted, RefusedByPolicy, UpdateRejected
from core.peers import Capability, Tier
from core.signed import seal

from . import protocol as proto
from .compose import Partial, assign_groups, combine

if TYPE_CHECKING:
    from .intake import OpenRound

log = logging.getLogger("covey.learning.groups")

GROUP_ACK_TIMEOUT = 30.0   # an aggregator loads the held-out set before it acknowledges its first round
GROUP_GRACE = 10.0         # beyond the round deadline, for the aggregators to combine and forward
USED = ("accepted", "outlier")   # worker statuses whose update reached its group's rule


class GroupRounds:
    """Mixed into :class:`~core.learning.coordinator.CoordinatorTask` (which provides the attributes)."""
    node: Any
    id: str
    spec: proto.TaskSpec
    current: OpenRound | None
    _spec_dict: dict
    partial_admission: Admission

    def _init_groups(self) -> None:
        self._dealt: dict[str, str] = {}   # worker -> its aggregator in the last round dealt
        # A partial's faults are its aggregator's own: they cost it reputation (it is CORE, so trusted).
        self.partial_admission = Admission(self.node, "ml.agg.partial", Capability.LEARN_CONTRIBUTE,
                                           accountable=lambda p: p in self.spec.aggregators,
                                           label="ml partial", logger=log)

    def _live_aggregators(self) -> list[str]:
        connected = set(self.node.connected_peers())
        return [a for a in self.spec.aggregators if a in connected and self.node.peers.tier_of(a) is Tier.CORE]

    async def _open_groups(self, rs: OpenRound, blob: bytes) -> dict[str, str]:
        """Deal the round's workers to the live aggregators; returns worker -> aggregator ({} if none took it).

        An aggregator that does not take its group is left out and the workers are dealt again.
        """
        live = self._live_aggregators()
        workers = sorted(rs.participants, key=lambda p: rs.slots[p])
        reach = await self._reach(live, workers)
        live = [a for a in live if a in reach]
        while live:
            groups = assign_groups(workers, live, reach, self._dealt)
            if not groups:
                return {}
            oks = await asyncio.gather(*(self._open_group(a, rs, blob, g) for a, g in groups.items()))
            failed = {a for a, ok in zip(groups, oks, strict=True) if not ok}
            if not failed:
                rs.groups = groups
                self._dealt = {w: a for a, g in groups.items() for w in g}
                # one that took its group but disconnected before the last answer came is lost already
                connected = set(self.node.connected_peers())
                rs.lost |= {a for a in groups if a not in connected}
                return {w: a for a, g in groups.items() for w in g}
            live = [a for a in live if a not in failed]
        return {}

    async def _reach(self, aggregators: list[str], workers: list[str]) -> dict[str, set[str]]:
        """Per aggregator that answers, the round's workers it is connected to or banned (so a worker
        is only dealt to an aggregator it can reach: after one dies, to another)."""
        async def ask(aggregator: str) -> set[str] | None:
            try:
                reply = await self.node.request(aggregator, "ml.agg.reach", {"task": self.id, "workers": workers},
                                                timeout=GROUP_ACK_TIMEOUT)
                reached = proto.need(reply, "reach", list, max_len=len(workers))
            except CoveyError as exc:
                log.info("task %s: aggregator %s did not say whom it reaches: %s", self.id, aggregator[:12], exc)
                return None
            return set(workers) & {w for w in reached if isinstance(w, str)}
        answers = await asyncio.gather(*(ask(a) for a in aggregators))
        return {a: r for a, r in zip(aggregators, answers, strict=True) if r is not None}

    async def _open_group(self, aggregator: str, rs: OpenRound, blob: bytes, group: list[str]) -> bool:
        body = {"task": self.id, "round": rs.number, "attempt": rs.attempt, "round_id": rs.round_id,
                "weights": blob, "deadline": self.spec.deadline, "weight_cap": rs.weight_cap,
                "spec": self._spec_dict, "group": {w: rs.slots[w] for w in group}}
        try:
            await self.node.request(aggregator, "ml.agg.round", seal(self.node.identity, "ml.agg.round", body),
                                    timeout=GROUP_ACK_TIMEOUT)
            return True
        except CoveyError as exc:
            log.info("task %s round %d: aggregator %s did not take its group: %s", self.id, rs.number,
                     aggregator[:12], exc)
            return False

    async def _send_group_keys(self, rs: OpenRound, keys: dict) -> None:
        """Secure aggregation in groups: each aggregator gets its workers' signed keys (``ml.agg.keys``)
        and runs the group's secure-aggregation round, so it learns only the group's sum."""
        async def send(aggregator: str, members: list[str]) -> None:
            body = {"task": self.id, "round_id": rs.round_id,
                    "keys": {w: keys[w] for w in members if keys.get(w) is not None}}
            try:
                await self.node.request(aggregator, "ml.agg.keys", body, timeout=GROUP_ACK_TIMEOUT)
            except CoveyError as exc:
                log.info("task %s round %d: aggregator %s did not take its group's keys: %s", self.id,
                         rs.number, aggregator[:12], exc)
        await asyncio.gather(*(send(a, g) for a, g in rs.groups.items()))

    def _lose_aggregator(self, peer: str) -> None:
        """An aggregator of the open round disconnected: stop waiting for its partial."""
        rs = self.current
        if rs is not None and not rs.closed and peer in rs.groups and peer not in rs.partials:
            log.warning("task %s round %d: aggregator %s lost; its %d worker(s) miss this round",
                        self.id, rs.number, peer[:12], len(rs.groups[peer]))
            rs.lost.add(peer)
            rs.check_all_in()

    # -- partials ---------------------------------------------------------------------
    async def on_partial(self, peer_id: str, envelope) -> dict:
        """Admit one aggregator's partial for the open round, or refuse it with a reason."""
        rs = self.current
        try:
            admitted = await self.partial_admission.admit_async(
                peer_id, envelope, authorize=self._authorize_partial,
                validate=lambda signer, body: self._validate_partial(rs, signer, body), task=self.id)
        except NotAdmitted as exc:
            return {"accepted": False, "reason": exc.rejection.code, "message": exc.rejection.message[:300]}
        assert rs is not None  # _authorize_partial admits nothing while no round is open
        rs.partials[admitted.signer] = admitted.value
        rs.check_all_in()
        return {"accepted": True, "reason": None}

    def _authorize_partial(self, signer: str, body: dict) -> None:
        rs = self.current
        if rs is None or signer not in rs.groups:
            raise RefusedByPolicy(f"{signer[:12]} aggregates no group of task {self.id}'s open round")
        if self.node.peers.tier_of(signer) is not Tier.CORE:
            raise RefusedByPolicy("only a CORE peer may aggregate a group")

    def _validate_partial(self, rs: OpenRound | None, signer: str, body: dict) -> dict:
        """The partial fits its group and this round; returns what the round keeps of it."""
        pb = proto.parse_partial(body, self.node.settings.max_message)
        if pb.task != self.id:
            raise MalformedMessage("partial for another task")
        if rs is None or pb.round_id != rs.round_id or pb.round != rs.number or rs.closed:
            raise UpdateRejected("late", f"partial for round {pb.round}, which is not open")
        if signer in rs.partials:
            raise UpdateRejected("duplicate", "a second partial for the same round")
        if set(pb.workers) != set(rs.groups[signer]):
            raise UpdateRejected("malformed", "the partial reports other workers than its group's")
        used = [e for e in pb.workers.values() if e["status"] in USED]
        if any(e["n_examples"] > rs.weight_cap for e in used):
            raise UpdateRejected("example_count", f"a worker's count exceeds the weight cap {rs.weight_cap}")
        if self.spec.rule.composes_exactly:
            expected = float(sum(1 if self.spec.dp else e["n_examples"] for e in used if e["used"]))
        else:
            expected = float(len(used))
        if not math.isclose(pb.weight, expected, rel_tol=1e-9, abs_tol=1e-9):
            raise UpdateRejected("weight", f"the partial's weight {pb.weight} is not its workers' {expected}")
        partial = None
        if pb.vector is not None:
            dim = self.spec.n_params()
            if len(pb.vector) != 8 * dim:
                raise UpdateRejected("shape", f"the partial has {len(pb.vector) // 8} values, the model {dim}")
            vec = np.frombuffer(pb.vector, dtype="<f8").astype(np.float64)
            if not np.isfinite(vec).all():
                raise UpdateRejected("non_finite", "the partial contains NaN or infinite values")
            partial = Partial(vec, pb.weight)
        return {"partial": partial, "body": pb, "at": time.monotonic()}

    def _combine_groups(self, rs: OpenRound, global_flat: np.ndarray):
        """Blocking: the new global vector from the partials (None, None if too few updates came)."""
        partials = [v["partial"] for v in rs.partials.values() if v["partial"] is not None]
        outliers: dict[str, str] = {}
        kept: set[str] = set()
        for v in rs.partials.values():
            for w, e in v["body"].workers.items():
                if e["status"] in USED:
                    rs.accepted[w] = (None, e["n_examples"], _nan(e["train_loss"]), _nan(e["norm"]))
                    if e["used"]:
                        kept.add(w)
                    if e["status"] == "outlier":
                        outliers[w] = "outlier"
                elif e["status"] == "rejected":
                    rs.rejected[w] = e["reason"] or "rejected"
                    rs.reasons[rs.rejected[w]] += 1
        if len(rs.accepted) - len(outliers) < self.spec.min_clients or not partials:
            rs.why = (f"{len(rs.accepted) - len(outliers)} updates accepted in {len(rs.partials)} group(s), "
                      f"{self.spec.min_clients} needed")
            return None, None
        delta = combine(self.spec.aggregator, partials)
        vector = (np.asarray(global_flat, dtype=np.float64) + delta).astype(np.float32)
        return vector, (kept, outliers)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def group_worker_entries(rs: OpenRound) -> dict[str, dict]:
    """A two-level round record's ``workers``: what each group's aggregator reported, with the group."""
    out: dict[str, dict] = {}
    for agg, members in rs.groups.items():
        kept = rs.partials.get(agg)
        for w in members:
            if kept is not None:
                entry = {k: v for k, v in kept["body"].workers[w].items() if v is not None}
            else:
                entry = {"status": "missing", "reason": "aggregator_lost" if agg in rs.lost else "no_partial"}
            out[w] = {"slot": rs.slots.get(w), "group": agg, **entry}
    for w in rs.participants - set(out):   # no live aggregator reached it
        out[w] = {"slot": rs.slots.get(w), "group": None, "status": "missing", "reason": "no_aggregator"}
    return dict(sorted(out.items()))


def group_records(rs: OpenRound) -> dict[str, dict]:
    """A round record's ``groups``: per aggregator its workers, what it forwarded, or that it was lost."""
    out: dict[str, dict] = {}
    for agg, members in sorted(rs.groups.items()):
        kept = rs.partials.get(agg)
        entry: dict[str, object] = {"workers": sorted(members)}
        if kept is None:
            entry["status"] = "lost" if agg in rs.lost else "silent"
        else:
            pb = kept["body"]
            statuses = [e["status"] for e in pb.workers.values()]
            entry.update(status="combined", accepted=sum(s == "accepted" for s in statuses),
                         rejected=sum(s in ("rejected", "outlier") for s in statuses),
                         missing=sum(s == "missing" for s in statuses), weight=pb.weight,
                         loss=None if not math.isfinite(pb.loss) else round(pb.loss, 6),
                         seconds=round(kept["at"] - rs.started, 4))
        out[agg] = entry
    return out
