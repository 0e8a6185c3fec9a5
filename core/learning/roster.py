"""Secure-aggregation rosters bound to real participants.

Secure aggregation hides a worker's update only if the other roster entries
are real, distinct workers: a coordinator that slips in keys it made itself
(a sybil) can strip those pairwise masks and read the update. So each worker
signs the keys it advertises with its identity (a sealed ``ml.sa.keys`` bound
to the task and round), the coordinator relays those signatures with the
roster, and each worker, before it shares anything, checks that

- every entry other than its own carries a valid signature by that entry's
  identity over exactly those keys, for this task and this round;
- every such identity is a peer this worker's user vouched for as a learning
  participant: in its peer book at a tier that may contribute learning
  updates (CORE or SANDBOX) and not banned. Being connected is not enough (a
  coordinator can connect sybils too); the worker need not be connected to it;
- the roster has at least ``minimum`` entries (``TaskSpec.round_minimum``:
  the task's min_clients and at least three).

Otherwise it refuses the roster, so it never sends shares or a masked input.
"""
from __future__ import annotations

from collections.abc import Callable

from core.errors import CoveyError, RosterRefused
from core.signed import seal, verify_only

KIND = "ml.sa.keys"


def sign_keys(identity, task: str, round_id: bytes, keys: dict) -> dict:
    """Seal this worker's advertised ``{"c_pk", "s_pk"}`` for ``task`` and ``round_id``."""
    return seal(identity, KIND, {"task": task, "round_id": round_id, "c_pk": keys["c_pk"], "s_pk": keys["s_pk"]})


def signed_keys(envelope, worker: str, task: str, round_id: bytes) -> dict:
    """The ``{"c_pk", "s_pk"}`` that ``worker`` signed for this task and round (RosterRefused otherwise)."""
    try:
        signer, body = verify_only(envelope, KIND)
    except CoveyError as exc:
        raise RosterRefused(f"the keys of {worker[:12]} carry no valid signature: {exc}") from None
    if signer != worker:
        raise RosterRefused(f"the keys listed for {worker[:12]} are signed by {signer[:12]}")
    if body.get("task") != task or body.get("round_id") != round_id:
        raise RosterRefused(f"the keys of {worker[:12]} were signed for another task or round")
    c_pk, s_pk = body.get("c_pk"), body.get("s_pk")
    if not isinstance(c_pk, bytes) or not isinstance(s_pk, bytes):
        raise RosterRefused(f"the signed keys of {worker[:12]} are malformed")
    return {"c_pk": c_pk, "s_pk": s_pk}


def check_roster(roster, signed, *, me: str, task: str, round_id: bytes,
                 known: Callable[[str], bool], minimum: int) -> None:
    """Raise RosterRefused unless every other entry is signed by a known participant and there are enough.

    ``known(peer_id)`` says whether this worker vouches for that identity.
    """
    if not isinstance(roster, dict) or not isinstance(signed, dict):
        raise RosterRefused("the roster and its signatures must be maps of worker id")
    if len(roster) < minimum:
        raise RosterRefused(f"the roster has {len(roster)} participants; this task needs at least {minimum} "
                            "known participants for secure aggregation to hide single updates")
    for worker, keys in roster.items():
        if worker == me:
            continue
        if not isinstance(worker, str) or not known(worker):
            raise RosterRefused(f"roster entry {str(worker)[:12]} is not a peer this node trusts to train "
                                "(trust it as core or sandbox to take part in secure aggregation with it)")
        if signed_keys(signed.get(worker), worker, task, round_id) != keys:
            raise RosterRefused(f"the roster's keys for {worker[:12]} are not the ones it signed")

