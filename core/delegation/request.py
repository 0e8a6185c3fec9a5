"""The signed task request: built by the requester, opened (checked) by the executor.

Sealed with core.signed as kind ``task.request``. The envelope's ``signer``,
``nonce`` and ``ts`` are the request's requester, nonce and created time; the
body holds ``task`` (32 hex digits), ``type``, ``args``, ``inputs`` (sha256
hex of every bytes-valued argument, by name) and ``deadline`` (unix time).
The request digest is sha256 of the canonical encoding of the whole envelope,
signature included: a proof names exactly one signed request. Where the bytes the
signature covers are at hand (just sealed, or just verified), that encoding is
spliced from them (:func:`core.signed.envelope_bytes`) rather than made again.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from core.delegation.encoding import sha256_hex
from core.delegation.errors import TaskTimedOut
from core.delegation.tasks import TaskType, task_type
from core.errors import MalformedMessage
from core.signed import Verifier, canonical, envelope_bytes, seal_signed, verify_only

KIND = "task.request"
MAX_TIMEOUT = 600.0
_BODY_KEYS = frozenset({"task", "type", "args", "inputs", "deadline"})
_TASK_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_T = TypeVar("_T")


class _once(Generic[_T]):
    """A value computed on first use and kept in the instance (``functools.cached_property``
    without the lock 3.11's takes on every first use: twice per task on its path)."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self.compute, self.name = compute, compute.__name__

    def __get__(self, obj: Any, cls: Any = None) -> _T:
        value = obj.__dict__[self.name] = self.compute(obj)
        return value


@dataclass(frozen=True)
class TaskRequest:
    """An opened request: its envelope, checked fields and digest."""
    envelope: dict
    task: str
    type: str
    args: dict            # checked and normalized by the task type
    inputs: dict
    deadline: float
    requester: str
    nonce: bytes
    created: float
    signed: bytes = field(default=b"", repr=False, compare=False)   # what the signature covers

    @classmethod
    def _of(cls, **fields) -> TaskRequest:
        """A request from every field, checked already (a frozen dataclass's __init__ sets each
        field through object.__setattr__: several times the cost of this)."""
        self = object.__new__(cls)
        self.__dict__.update(fields)
        return self

    @_once
    def digest(self) -> str:
        """The request digest, computed on first use (a requester's while the request travels)."""
        if self.signed:
            return sha256_hex(envelope_bytes(self.envelope, self.signed))
        return request_digest(self.envelope)

    @property
    def kind(self) -> TaskType:
        return task_type(self.type)

    def summary(self) -> dict:
        """The request for display: bytes arguments replaced by their size and digest (made once:
        the record and the requester's view both use it; do not change it)."""
        return self._summary

    @_once
    def _summary(self) -> dict:
        args = {k: ({"bytes": len(v), "sha256": self.inputs[k]} if isinstance(v, bytes) else v)
                for k, v in self.args.items()}
        return {"task": self.task, "type": self.type, "args": args, "inputs": dict(self.inputs),
                "deadline": self.deadline, "nonce": self.nonce.hex(), "requester": self.requester,
                "created": self.created, "digest": self.digest}


def request_digest(envelope: dict) -> str:
    """sha256 hex of the canonical bytes of a sealed request envelope."""
    return sha256_hex(canonical(envelope))


def input_digests(args: dict) -> dict[str, str]:
    return {k: sha256_hex(v) for k, v in sorted(args.items()) if isinstance(v, (bytes, bytearray))}


def build_request(identity, type_name: str, args: dict, *, timeout: float = 30.0,
                  now: float | None = None, types: dict | None = None) -> TaskRequest:
    """Check ``args`` for ``type_name`` and seal a request that expires ``timeout`` s from now."""
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= MAX_TIMEOUT):
        raise MalformedMessage(f"a task timeout must be in (0, {MAX_TIMEOUT:g}] s, got {timeout!r}")
    kind = task_type(type_name, types)
    checked = kind.check(args)
    created = time.time() if now is None else float(now)
    task_id, inputs, deadline = os.urandom(16).hex(), input_digests(args), created + float(timeout)
    body = {"task": task_id, "type": type_name, "args": args, "inputs": inputs, "deadline": deadline}
    envelope, signed = seal_signed(identity, KIND, body, now=created)
    # Built from checked parts: the fields are not parsed again (the executor does that).
    return TaskRequest._of(envelope=envelope, task=task_id, type=kind.name, args=checked, inputs=dict(inputs),
                       deadline=deadline, requester=identity.id, nonce=envelope["nonce"], created=created,
                       signed=signed)


def open_request(verifier: Verifier, envelope, *, now: float | None = None,
                 types: dict | None = None) -> TaskRequest:
    """Executor side: signature, clock, replay (the verifier), then every field.

    Raises MalformedMessage, InvalidSignature, StaleMessage, ReplayDetected,
    UnknownTaskType, BadRequest (an argument) or TaskTimedOut (deadline passed).
    """
    _, body, signed = verifier.open_signed(envelope, KIND, now=now)
    return _parse(envelope, body, types, now=time.time() if now is None else now, signed=signed)


def admit_request(verifier: Verifier, envelope, *, sender: str, authorize, now: float | None = None,
                  types: dict | None = None) -> TaskRequest:
    """Executor side, through the one admission step (``Verifier.admit``): the envelope's shape,
    the signer being ``sender``, ``authorize(signer, body)`` (the tier), then clock, signature
    and replay, and last every field. Raises what :func:`open_request` raises, plus NotTheSender
    and whatever ``authorize`` raises."""
    _, body, signed = verifier.admit_signed(envelope, KIND, sender, authorize, now=now)
    return _parse(envelope, body, types, now=time.time() if now is None else now, signed=signed)


def load_request(envelope, *, types: dict | None = None) -> TaskRequest:
    """A stored request re-read later: signature and fields, no clock or replay check."""
    _, body = verify_only(envelope, KIND)
    return _parse(envelope, body, types, now=None)


def _parse(envelope: dict, body: dict, types: dict | None, now: float | None,
           signed: bytes = b"") -> TaskRequest:
    if body.keys() != _BODY_KEYS:
        raise MalformedMessage(f"task request fields must be {sorted(_BODY_KEYS)}, got {sorted(map(str, body))[:10]}")
    task_id, deadline, inputs = body["task"], body["deadline"], body["inputs"]
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise MalformedMessage("task id must be 32 lowercase hex digits")
    kind = task_type(body["type"], types)
    args = kind.check(body["args"])
    if not isinstance(inputs, dict) or inputs != input_digests(body["args"]):
        raise MalformedMessage("the request's input digests do not match its bytes arguments")
    created = float(envelope["ts"])
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) \
            or not created < deadline <= created + MAX_TIMEOUT:
        raise MalformedMessage(f"the deadline must be after the creation time and at most "
                               f"{MAX_TIMEOUT:g} s later")
    if now is not None and now >= deadline:
        raise TaskTimedOut(f"task {task_id[:8]}'s deadline passed {now - deadline:.1f} s before it "
                           f"could start", timeout=deadline - created)
    return TaskRequest._of(envelope=envelope, task=task_id,
                       type=kind.name, args=args, inputs=dict(inputs), deadline=float(deadline),
                       requester=envelope["signer"], nonce=envelope["nonce"], created=created, signed=signed)
