"""The one admission step for signed objects that arrive from peers.

Every service (learning now; knowledge, tasks and the chat mailbox next) admits
what a peer sends it through an :class:`Admission`, in this order, each step
before anything costlier:

1. shape: a well-formed envelope of the expected kind (:mod:`core.signed`);
2. the signer is the sender;
3. authorise: the service's ``authorize(signer, body)`` (membership, task,
   ...) and the policy check for the service's capability
   (``node.peers.check``), before any memory is spent on the signer;
4. clock and replay (a window per signer) and the signature
   (:meth:`core.signed.Verifier.open`);
5. the service's ``validate(signer, body)``.

A failure is a :class:`Rejection` with a typed :class:`Reason`: it lowers the
sender's reputation only when the fault is the sender's own (malformed, not
the sender, bad signature, failed validation; never stale, replayed or not
authorised, which anyone may cause by resending an honest peer's object), it
emits ``MESSAGE_REJECTED`` and logs, both rate-limited per peer, and it is
raised as :class:`~core.errors.NotAdmitted` whose ``code`` is the failed
step's error code (what the peer is told).
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from core import events as ev
from core.errors import (CoveyError, InvalidSignature, Invalid, MalformedMessage, NotAdmitted,
                         NotTheSender, ReplayDetected, StaleMessage)
from core.net.limits import LogLimiter
from core.peers import Capability
from core.signed import Verifier, check_sender

log = logging.getLogger("covey.admission")

Authorize = Callable[[str, dict], object]  # raises to refuse; what it returns is ignored
Validate = Callable[[str, dict], Any]


class Reason(str, Enum):
    """Why a signed object was not admitted (the step that failed)."""
    MALFORMED = "malformed"
    NOT_SENDER = "not_sender"
    NOT_AUTHORISED = "not_allowed"
    STALE = "stale"
    REPLAY = "replay"
    BAD_SIGNATURE = "bad_signature"
    INVALID = "invalid"

    @property
    def peer_fault(self) -> bool:
        """Whether only the sender can have caused it (so it costs reputation)."""
        return self in _PEER_FAULTS


_PEER_FAULTS = frozenset({Reason.MALFORMED, Reason.NOT_SENDER, Reason.BAD_SIGNATURE, Reason.INVALID})
_VERIFY_REASONS = ((StaleMessage, Reason.STALE), (ReplayDetected, Reason.REPLAY),
                   (InvalidSignature, Reason.BAD_SIGNATURE), (MalformedMessage, Reason.MALFORMED))


@dataclass(frozen=True)
class Rejection:
    """One object not admitted: from whom, the failed step, the service's word for it, why."""
    peer: str
    kind: str
    reason: Reason
    code: str          # reason.value, or the validation's own word (``Invalid.reason``, e.g. "shape")
    message: str
    penalized: bool    # whether it cost the sender reputation


@dataclass(frozen=True)
class Admitted:
    """An admitted object: its signer (the sender), its body and what ``validate`` returned."""
    signer: str
    body: dict
    value: Any = None


class Admission:
    """Admits signed objects of one ``kind`` for a service holding ``capability``.

    ``accountable(peer)`` says whether the peer's own faults cost it reputation
    here (default: always; the learning coordinator: only its participants).
    ``verifier`` keeps the replay windows (one per admission by default).
    ``words`` renames a reason's code where the service's protocol has its own
    word for it; ``label`` names the object in the reputation log.
    """

    def __init__(self, node, kind: str, capability: Capability | None, *,
                 verifier: Verifier | None = None, accountable: Callable[[str], bool] | bool = True,
                 words: Mapping[Reason, str] | None = None, label: str | None = None,
                 logger: logging.Logger | None = None):
        self.node = node
        self.kind = kind
        self.capability = capability
        self.verifier = verifier if verifier is not None else Verifier(node.settings.clock_skew)
        self._accountable = accountable
        self.words = dict(words or {})
        self.label = label or kind
        self.log = logger or log
        self._limiter = LogLimiter()

    # -- the steps -------------------------------------------------------------------
    def open(self, sender: str, envelope: Any, *, authorize: Authorize | None = None,
             now: float | None = None, **event) -> tuple[str, dict]:
        """Steps 1-4; returns ``(signer, body)`` or raises :class:`NotAdmitted` (already reported)."""
        try:
            signer = check_sender(envelope, self.kind, sender)
        except NotTheSender as exc:
            raise self._refuse(sender, Reason.NOT_SENDER, exc, event) from exc
        except MalformedMessage as exc:
            raise self._refuse(sender, Reason.MALFORMED, exc, event) from exc
        try:
            if authorize is not None:
                authorize(signer, envelope["body"])
            if self.capability is not None:
                self.node.peers.check(signer, self.capability)
        except CoveyError as exc:
            raise self._refuse(sender, Reason.NOT_AUTHORISED, exc, event) from exc
        try:
            return self.verifier.open(envelope, self.kind, now=time.time() if now is None else now)
        except CoveyError as exc:
            reason = next((r for t, r in _VERIFY_REASONS if isinstance(exc, t)), Reason.MALFORMED)
            raise self._refuse(sender, reason, exc, event) from exc

    def admit(self, sender: str, envelope: Any, *, authorize: Authorize | None = None,
              validate: Validate | None = None, now: float | None = None, **event) -> Admitted:
        """Every step with a blocking (plain) ``validate``; raises :class:`NotAdmitted`."""
        signer, body = self.open(sender, envelope, authorize=authorize, now=now, **event)
        try:
            value = validate(signer, body) if validate is not None else None
        except CoveyError as exc:
            raise self._refuse(sender, Reason.INVALID, exc, event) from exc
        return Admitted(signer, body, value)

    async def admit_async(self, sender: str, envelope: Any, *, authorize: Authorize | None = None,
                          validate: Callable[[str, dict], Awaitable[Any] | Any] | None = None,
                          now: float | None = None, **event) -> Admitted:
        """Every step, awaiting ``validate`` when it is a coroutine; raises :class:`NotAdmitted`."""
        signer, body = self.open(sender, envelope, authorize=authorize, now=now, **event)
        try:
            value = validate(signer, body) if validate is not None else None
            if inspect.isawaitable(value):
                value = await value
        except CoveyError as exc:
            raise self._refuse(sender, Reason.INVALID, exc, event) from exc
        return Admitted(signer, body, value)

    # -- rejections ------------------------------------------------------------------
    def reject(self, sender: str, reason: Reason, code: str, message: str, **event) -> Rejection:
        """Record one rejection: reputation (the sender's own fault only), event and log (rate-limited).

        Also for what a service finds wrong after admission (e.g. an outlier at aggregation).
        """
        penalized = reason.peer_fault and self.accountable(sender)
        if penalized:
            try:
                self.node.peers.record_outcome(sender, False, f"{self.label}: {code}")
            except CoveyError as exc:  # e.g. not in the peer book
                log.debug("no reputation change for %s: %s", sender[:12], exc)
        rejection = Rejection(sender, self.kind, reason, code, message, penalized)
        suppressed = self._limiter.allow(sender)
        if suppressed is not None:  # a flood of bad objects is no flood of logs and events
            (self.log.info if self.accountable(sender) else self.log.debug)(
                "rejected a %s from %s%s (%s): %s%s", self.kind, sender[:12],
                "".join(f" {k}={v}" for k, v in event.items()), code, message[:200],
                f" ({suppressed} more not logged)" if suppressed else "")
            self.node.events.emit(ev.MESSAGE_REJECTED, peer=sender, type=self.kind, code=code,
                                  reason=message[:200], suppressed=suppressed, **event)
        return rejection

    def accountable(self, peer: str) -> bool:
        """Whether ``peer``'s own faults cost it reputation here."""
        rule = self._accountable
        return rule(peer) if callable(rule) else bool(rule)

    def _refuse(self, sender: str, reason: Reason, exc: CoveyError, event: dict) -> NotAdmitted:
        if isinstance(exc, Invalid):          # the service's own word (e.g. "shape", "not_participant")
            code = exc.reason
        elif isinstance(exc, MalformedMessage):  # a malformed body, found by the validation
            code = Reason.MALFORMED.value
        else:
            code = self.words.get(reason, reason.value)
        return NotAdmitted(self.reject(sender, reason, code, str(exc), **event), exc)
