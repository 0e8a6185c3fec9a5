"""Running one secure-aggregation round over the network, for whoever collects the masked inputs.

Shared by the coordinator of a one-level task and by a group's aggregator of a
two-level one (which then learns only its group's sum): check the workers'
signed keys, send the roster and relay the encrypted shares
(``ml.sa.roster``/``ml.sa.relay``), and after the masked inputs are in ask the
survivors to unmask (``ml.sa.unmask``) and refuse a sum no honest workers
could have produced. The cryptography is :mod:`core.learning.secagg`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import BadRequest, CoveyError

from . import roster as sa_roster

if TYPE_CHECKING:
    from .intake import OpenRound
    from .secagg import SecAggCoordinator, SecAggParams

log = logging.getLogger("covey.learning.secure")

UNMASK_TIMEOUT = 10.0


class SecureRounds:
    """Mixed into the coordinator's and the group aggregator's task (which provide ``node`` and ``id``)."""
    node: Any
    id: str

    async def _secagg_setup(self, rs: OpenRound, params: SecAggParams, keys: dict,
                            minimum: int) -> SecAggCoordinator | None:
        """Roster and share relay among the workers whose signed ``keys`` came; None if fewer than
        ``minimum`` (or the threshold) are ready. Workers left out count as dropped."""
        from core.learning.secagg import SecAggCoordinator
        advertised = {}
        for p, envelope in keys.items():
            try:
                advertised[p] = sa_roster.signed_keys(envelope, p, self.id, rs.round_id)
            except CoveyError as exc:
                log.warning("secure aggregation: keys of %s refused: %s", p[:12], exc)
        ready = sorted(advertised)
        if len(ready) < max(params.threshold, minimum):
            return None
        if params.threshold > len(ready) or params.threshold <= len(ready) / 2:
            from core.learning.secagg import SecAggParams, default_threshold
            params = SecAggParams(round_id=params.round_id, threshold=default_threshold(len(ready)),
                                  dim=params.dim)
        sa = SecAggCoordinator(params, ready)
        for p in ready:
            try:
                sa.add_advertisement(p, advertised[p])
            except BadRequest as exc:
                log.warning("secure aggregation: bad keys from %s: %s", p[:12], exc)
        try:
            roster = sa.roster()
            signed = {p: keys[p] for p in roster}  # each worker checks the others signed their keys
            timeout = max(1.0, rs.deadline_at - time.monotonic())
            replies = await asyncio.gather(*(self._sa_call(p, "ml.sa.roster", rs,
                                                           {"roster": roster, "signed": signed}, timeout)
                                             for p in roster))
            for p, reply in zip(roster, replies, strict=True):
                if reply is not None:
                    try:
                        sa.add_shares(p, reply.get("blobs"))
                    except BadRequest as exc:
                        log.warning("secure aggregation: bad shares from %s: %s", p[:12], exc)
            relay = sa.relay()
            rs.sa = sa  # masked inputs may arrive as soon as the first worker has its shares
            await asyncio.gather(*(self._sa_call(p, "ml.sa.relay", rs, {"blobs": relay[p]}, timeout)
                                   for p in relay))
        except CoveyError as exc:
            log.warning("task %s round %d: secure aggregation setup failed: %s", self.id, rs.number, exc)
            return None
        rs.dropped |= rs.participants - set(relay)
        rs.check_all_in()
        return sa

    async def _sa_call(self, peer: str, msg_type: str, rs: OpenRound, extra: dict, timeout: float):
        try:
            return await self.node.request(peer, msg_type, {"task": self.id, "round_id": rs.round_id,
                                                            **extra}, timeout=timeout)
        except CoveyError as exc:
            log.info("secure aggregation: %s to %s failed: %s", msg_type, peer[:12], exc)
            return None

    async def _secagg_unmask(self, rs: OpenRound, sa: SecAggCoordinator) -> tuple[np.ndarray, list[str]] | None:
        """The survivors' unmasked float32 sum (``sa.total_weight`` is set) and who they are; None (with
        ``rs.why``) if it cannot be unmasked or no honest workers could have produced it."""
        try:
            request = sa.unmask_request()
            survivors = request["survivors"]
            replies = await asyncio.gather(*(self._sa_call(p, "ml.sa.unmask", rs, request, UNMASK_TIMEOUT)
                                             for p in survivors))
            for p, reply in zip(survivors, replies, strict=True):
                if reply is not None:
                    try:
                        sa.add_unmask_response(p, reply)
                    except BadRequest as exc:
                        log.warning("secure aggregation: bad unmask reply from %s: %s", p[:12], exc)
            total = await asyncio.to_thread(sa.result)
        except CoveyError as exc:
            log.warning("task %s round %d: %s", self.id, rs.number, exc)
            rs.why = f"secure aggregation could not unmask the sum: {exc}"
            return None
        problem = implausible_sum(total, sa.total_weight, len(survivors), sa.params)
        if problem:
            rs.why = f"the unmasked sum is refused: {problem}"
            return None
        return total, survivors


def implausible_sum(total: np.ndarray, total_weight: float | None, n: int, params) -> str | None:
    """Why an unmasked secure-aggregation sum cannot come from ``n`` honest workers (None if it can).

    Each honest worker adds a weight in [0, 1] and ``weight * clip(delta)``, so
    the total weight is at most ``n`` and every coordinate of the sum at most
    ``clip`` times the total weight (plus rounding): a worker that scales its
    vector or its weight beyond that is caught here.
    """
    slack = n * 0.5 / params.scale
    if total_weight is None or not total_weight > slack:
        return f"total weight {total_weight} is not positive"
    if total_weight > n + slack:
        return f"total weight {total_weight:.4f} exceeds the {n} survivors' caps (each at most 1)"
    peak = float(np.max(np.abs(total))) if total.size else 0.0
    if peak > params.clip * total_weight + slack:
        return (f"a coordinate of the sum ({peak:.1f}) exceeds clip x total weight "
                f"({params.clip:g} x {total_weight:.4f})")
    return None
