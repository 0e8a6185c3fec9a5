"""The delegation service (`covey tasks`): send signed tasks to peers, serve theirs, keep the proofs.

Reached as ``node.service("delegation")``. As an executor it answers ``task.request`` over
peer links and ``POST /tasks`` over plain HTTP (:mod:`core.delegation.http`) through one
admission step: the request's signer must be the sender, and a CORE peer
(:meth:`DelegationService.authorize`), before its clock, signature and replay are checked.
Datasets come from the ``task_datasets`` setting, never from a request. As a requester it
verifies every proof (signed by the executor, for our request digest, over the result bytes
received) before it shows or records a result as verified. Both sides are recorded in the
``tasks`` table (:mod:`core.delegation.db`), written behind the answer
(:mod:`core.delegation.recorder`): every read here, and :meth:`DelegationService.stop`, writes
what is queued first.
"""
from __future__ import annotations

import asyncio
import builtins
import logging
import os
import time

from core import events as ev
from core.delegation import protocol as proto
from core.delegation.db import MIGRATIONS, TaskDB
from core.delegation.encoding import decode_result, received_result
from core.delegation.errors import EXIT_ERRORS, TaskFailed
from core.delegation.executor import Executor, Served, check_datasets
from core.delegation.proofs import verify_proof, verify_proof_digest
from core.delegation.recorder import Recorder
from core.delegation.request import TaskRequest, admit_request, build_request
from core.delegation.tasks import MAX_WEIGHTS_BYTES, describe
from core.errors import (BadRequest, CoveyError, InvalidSignature, MalformedMessage, MessageTooLarge,
                         PeerBanned, RefusedByPolicy, ReplayDetected, TimedOut, UnknownPeer)
from core.peers import Capability, allows, lowest_tier_allowing
from core.signed import NotTheSender, Verifier

log = logging.getLogger("covey.delegation")

GRACE = 5.0              # seconds past a task's deadline the requester still waits for its proof
MAX_TIMEOUT = 600.0
PENALISED = (InvalidSignature, ReplayDetected, NotTheSender)   # dishonest, not merely refused
_REQUEST_KEYS, _RESULT_KEYS = frozenset({"request"}), frozenset({"proof", "result"})


class DelegationService:
    """Runs tasks for CORE peers and delegates tasks to them. (Its ``list`` method shadows the
    builtin in the class body: annotations after it spell ``builtins.list``.)"""

    name = "delegation"
    migrations = MIGRATIONS

    def __init__(self, node) -> None:
        self.node = node
        self.executor = Executor(node.identity, datasets=node.settings.task_datasets)
        self.verifier = Verifier(skew=node.settings.clock_skew)
        self.db: TaskDB | None = None
        self.recorder: Recorder | None = None
        self._unsubscribe = None
        from core.delegation.http import HttpEndpoint
        self.http = HttpEndpoint(self)
        # CONNECT at the door: who may delegate is decided by authorize() inside the admission
        # step, the same for links and HTTP, with a refusal worded for the requester.
        # eager: an inline task (echo) is admitted, run, proved and answered where its message
        # arrives, without a task of its own or a loop turn.
        node.on_message(proto.REQUEST, self._on_request, capability=Capability.CONNECT, eager=True)

    @property
    def _tasks(self) -> TaskDB:
        """The tasks table (made by start())."""
        if self.db is None:
            raise RuntimeError("the delegation service is not started")
        return self.db

    @property
    def _records(self) -> Recorder:
        """The tasks table's write-behind queue (made by start())."""
        if self.recorder is None:
            raise RuntimeError("the delegation service is not started")
        return self.recorder

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        self.db = TaskDB(self.node.store)
        self.recorder = Recorder(self.db, self.node.store, self._written)
        stale = self.db.interrupted()
        if stale:
            log.info("%d task(s) sent before the last stop will not be answered", stale)
        self.node.transport.add_http_route("POST", proto.HTTP_PATH, self.http.handle)
        self.node.transport.add_health_check("delegation:executor", self.health)
        self._unsubscribe = self.node.events.on(ev.SETTINGS_CHANGED, self._on_settings)

    async def stop(self) -> None:
        if self.node.transport is not None:
            self.node.transport.remove_http_route("POST", proto.HTTP_PATH)
            self.node.transport.remove_health_check("delegation:executor")
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.recorder is not None:   # nothing queued is lost; what comes later is written at once
            self.recorder.flush()
            self.recorder.immediate = True

    def flush(self) -> None:
        """Write the task records still queued (the reads here do it themselves)."""
        if self.recorder is not None:
            self.recorder.flush()

    def _on_settings(self, event) -> None:
        if "task_datasets" in event.data.get("changes", ()):
            self.executor.datasets = check_datasets(self.node.settings.task_datasets)

    # -- executor side -------------------------------------------------------------
    def authorize(self, signer: str, body: dict | None = None) -> None:
        """Raise unless ``signer`` may delegate tasks to this node (the policy table's
        DELEGATE_TASKS), with a refusal that tells the requester which tier it needs."""
        try:
            self.node.peers.check(signer, Capability.DELEGATE_TASKS)   # the common case, one look-up
        except CoveyError:
            self._refuse(signer)

    def _refuse(self, signer: str) -> None:
        """Raise the refusal of ``signer``, worded for the requester."""
        rec = self.node.peers.get(signer)
        if rec is not None and rec.banned:
            raise PeerBanned("refused by policy: this node has banned your identity")
        tier = self.node.peers.tier_of(signer)
        if not allows(tier, False, Capability.DELEGATE_TASKS):
            needed = lowest_tier_allowing(Capability.DELEGATE_TASKS)
            raise RefusedByPolicy(f"refused by policy: only {needed.value.upper()} peers may delegate "
                                  f"tasks to this node; you are {tier.value.upper()}",
                                  tier=tier.value, needed=needed.value)

    def admit(self, envelope, sender: str, *, authenticated: bool) -> TaskRequest:
        """The admission step for a request ``sender`` sent (a link's peer, HTTP's signer header).

        A forged or replayed request costs reputation only when the sender is ``authenticated``
        (a peer link): over plain HTTP anyone may name anyone in the header, or replay a request
        they saw, and must not be able to get its signer banned that way."""
        try:
            return admit_request(self.verifier, envelope, sender=sender, authorize=self.authorize,
                                 types=self.executor.types)
        except PENALISED as exc:
            if authenticated and self.node.peers.get(sender) is not None:
                self.node.peers.record_outcome(sender, False, exc.code)
            raise

    async def _on_request(self, peer: str, body: dict) -> dict:
        if not isinstance(body, dict) or body.keys() != _REQUEST_KEYS:
            raise MalformedMessage(f"a {proto.REQUEST} body is {{\"request\": <signed request>}}")
        request = self.admit(body["request"], peer, authenticated=True)
        served = self.serve_now(request, "link")   # an inline type: no coroutine more
        if served is None:
            served = await self.serve(request, "link")
        return {"proof": served.proof, "result": served.result_bytes}

    async def serve(self, request: TaskRequest, via: str) -> Served:
        """Run an admitted request and record it; raises (RateLimited, ExecutorBusy, BadRequest,
        TaskTimedOut) when it never ran."""
        served = self.serve_now(request, via)
        if served is None:
            served = self._served(request, await self.executor.execute(request), via)
        return served

    def serve_now(self, request: TaskRequest, via: str) -> Served | None:
        """:meth:`serve` for a request whose type runs inline, at once; None for any other type
        (nothing done)."""
        served = self.executor.execute_now(request)
        return None if served is None else self._served(request, served, via)

    def _served(self, request: TaskRequest, served: Served, via: str) -> Served:
        # Queued now (nothing is lost if the node stops at once), made and written after the proof
        # went out, with the rows queued meanwhile.
        self._records.add_later(request.task, proto.SERVED, lambda: _served_row(request, served, via))
        return served

    def _written(self, task: str, role: str, row: dict) -> None:
        self._changed(task, role, row["state"], row["peer"], row["type"])

    def health(self) -> dict:
        """The executor's /health check: warn while its queue is full."""
        s = self.executor.status()
        full = s["running"] + s["queued"] >= s["max_running"] + s["max_queued"]
        return {"componentType": "component", "observedValue": s["running"] + s["queued"],
                "observedUnit": "tasks", "status": "warn" if full else "pass",
                "output": "executor busy: its queue is full" if full else ""}

    # -- requester side --------------------------------------------------------------
    async def run(self, peer: str, type_name: str, args: dict | None = None, *,
                  files: dict[str, str] | None = None, timeout: float = 30.0, http: bool = False) -> dict:
        """Delegate one task to ``peer`` (id, prefix or name) and verify its proof.

        ``files`` maps file arguments to absolute local paths this node reads. Returns the
        task's view (``verified`` True); raises the executor's refusal, the typed error of a
        verified proof whose task failed, or the reason a proof was rejected."""
        rec = self.node.resolve(peer)
        args = dict(args or {})
        for name, path in (files or {}).items():
            args[name] = await asyncio.to_thread(_read_file, name, path)
        sent = build_request(self.node.identity, type_name, args, timeout=timeout)
        return await self.deliver(rec.id, sent, http=http)

    async def deliver(self, peer_id: str, sent: TaskRequest, *, http: bool = False) -> dict:
        """Send a built request over the link (or HTTP), verify and record the answer."""
        via = "http" if http else "link"
        wait = max(0.0, sent.deadline - time.time()) + GRACE
        # Queued on the next loop turn, while the request travels (its digest is computed then), and
        # written with its outcome, batched with the other rows queued meanwhile (recorder).
        record = _Once(self._record_sent, peer_id, sent, via)
        asyncio.get_running_loop().call_soon(record)
        try:
            try:
                proof, result_bytes = await self._send(peer_id, sent, http, wait)
            finally:
                record()   # now, if the send failed before the loop turned (the outcome follows it)
        except TimedOut as exc:
            if exc.code == "timeout":   # no answer at all (a task the executor stopped has a proof)
                exc = TimedOut(f"task {sent.task[:8]} ({sent.type}) got no answer from "
                               f"{self._name(peer_id)} within {wait:g} s (its timeout was "
                               f"{sent.deadline - sent.created:g} s)", timeout=wait)
            self._record_failure(peer_id, sent, "failed", exc)
            raise exc from None
        except (MalformedMessage, MessageTooLarge) as exc:
            self._reject(peer_id, sent, None, exc)
            raise
        except CoveyError as exc:
            self._record_failure(peer_id, sent, "refused", exc)
            raise
        return self._accept(peer_id, sent, proof, result_bytes, via)

    def _record_sent(self, peer_id: str, sent: TaskRequest, via: str) -> None:
        # Computed now, while the request travels: verifying the proof needs the digest, the answer's
        # view the summary.
        sent.summary()
        self._records.add_later(sent.task, proto.SENT, lambda: dict(
            task=sent.task, role=proto.SENT, type=sent.type, peer=peer_id, via=via, state="sent",
            request_digest=sent.digest, request=sent.summary(), created=sent.created))

    async def _send(self, peer_id: str, sent: TaskRequest, http: bool, wait: float) -> tuple[dict, bytes]:
        if http:
            from core.delegation.http import submit
            return await submit(self.node.transport.http_client(), self._http_address(peer_id), sent, wait)
        reply = await self.node.request(peer_id, proto.REQUEST, {"request": sent.envelope}, timeout=wait)
        return _reply_parts(reply)

    def _accept(self, peer_id: str, sent: TaskRequest, proof, result_bytes: bytes, via: str) -> dict:
        """Verify the executor's answer, record it, and return the task's view (or raise)."""
        try:
            statement = verify_proof(proof, executor=peer_id, request_digest=sent.digest,
                                     result_bytes=result_bytes)
            result = decode_result(result_bytes)
        except CoveyError as exc:
            self._reject(peer_id, sent, proof, exc)
            raise
        pred = statement["predicate"]
        state = "done" if pred["exit"]["status"] == "ok" else "failed"
        ended = time.time()
        # Queued: one commit, after the call returned, for the row and the executor's reputation
        # (shared with the other rows queued meanwhile).
        self._records.finish(sent.task, proto.SENT, peer=peer_id, type=sent.type, state=state, verified=True,
                             proof=proof, result=result_bytes, result_sha256=statement["subject"][0]["digest"]["sha256"],
                             cost=pred["cost"], error=pred["exit"]["message"] or None, ended=ended,
                             after=lambda: self._reward(peer_id))
        if state == "failed":
            raise EXIT_ERRORS.get(pred["exit"]["status"], TaskFailed)(
                f"{pred['exit']['message'] or pred['exit']['status']} (the proof is signed and verified: "
                f"`covey tasks show {sent.task[:12]}`)")
        return {"task": sent.task, "type": sent.type, "role": proto.SENT, "peer": peer_id,
                "peer_name": self._name(peer_id), "via": via, "state": state, "created": sent.created,
                "ended": ended, "cost": pred["cost"], "verified": True, "error": None,
                "args": sent.summary()["args"], "result": result,
                "proof": {"dsse": proof, "statement": statement}}

    def _reward(self, peer_id: str) -> None:
        if self.node.peers.get(peer_id) is not None:
            self.node.peers.record_outcome(peer_id, True, "verified proof")

    def _reject(self, peer_id: str, sent: TaskRequest, proof, exc: CoveyError) -> None:
        """An answer that does not verify: recorded as rejected, and it costs the executor (now)."""
        self._records.finish(sent.task, proto.SENT, peer=peer_id, type=sent.type, state="rejected", verified=False,
                             proof=proof if isinstance(proof, dict) else None, error=f"{exc.code}: {exc}")
        if self.node.peers.get(peer_id) is not None:
            self.node.peers.record_outcome(peer_id, False, f"task proof rejected: {exc.code}")

    def _record_failure(self, peer_id: str, sent: TaskRequest, state: str, exc: CoveyError) -> None:
        self._records.finish(sent.task, proto.SENT, peer=peer_id, type=sent.type, state=state, verified=False,
                             error=f"{exc.code}: {exc}")

    def _http_address(self, peer_id: str) -> str:
        rec = self.node.peers.get(peer_id)
        if rec is None or not rec.address:
            raise UnknownPeer(f"no address is known for {peer_id[:16]}: add it with `covey peers add HOST:PORT`")
        return rec.address

    # -- views -----------------------------------------------------------------------
    def list(self, role: str | None = None, limit: int = 200) -> list[dict]:
        """Tasks sent and served, newest first (without results and proofs)."""
        self.flush()
        return [self.view(r, brief=True) for r in self._tasks.list(limit, role)]

    def show(self, ref: str) -> dict:
        """One task (id or unique prefix) with its proof, re-verified now, per role."""
        ref = (ref or "").strip().lower()
        self.flush()
        ids = self._tasks.find(ref) if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref) else []
        if len(ids) != 1:
            raise BadRequest(f"no task matches {ref!r:.40}; see `covey tasks list`" if not ids else
                             f"{ref!r} matches several tasks: {', '.join(i[:12] for i in ids)}; give more")
        rows = self._tasks.get(ids[0])
        views = [self.view(r) | {"verification": self.verification(r)} for r in rows]
        return views[0] if len(views) == 1 else {"task": ids[0], "roles": views}

    def verification(self, row: dict) -> dict:
        """Check a stored proof again: the executor's signature, our request digest, the result digest."""
        executor = self.node.identity.id if row["role"] == proto.SERVED else row["peer"]
        out = {"executor": executor, "request_digest": row["request_digest"],
               "result_sha256": row["result_sha256"], "verified": False, "reason": None}
        if row["proof"] is None or row["result_sha256"] is None:
            out["reason"] = row["error"] or "no proof was received"
            return out
        try:
            verify_proof_digest(row["proof"], executor=executor, request_digest=row["request_digest"],
                                result_sha256=row["result_sha256"])
            out["verified"] = True
        except CoveyError as exc:
            out["reason"] = str(exc)
        return out

    def view(self, row: dict, brief: bool = False) -> dict:
        """A row as `covey tasks list/show` print it."""
        out = {"task": row["id"], "type": row["type"], "role": row["role"], "peer": row["peer"],
               "peer_name": self._name(row["peer"]), "via": row["via"], "state": row["state"],
               "created": row["created"], "ended": row["ended"], "cost": row["cost"],
               "verified": row["verified"], "error": row["error"], "args": row["request"].get("args")}
        if brief:
            return out
        result = None
        if row["result"] is not None:
            try:
                result = decode_result(row["result"])
            except CoveyError as exc:
                result = {"unreadable": str(exc)}
        out["result"] = result
        out["proof"] = None if row["proof"] is None else {"dsse": row["proof"],
                                                           "statement": _statement(row["proof"])}
        return out

    def types(self) -> builtins.list[dict]:
        """The task types this node runs, with their arguments and the datasets it offers."""
        specs = {t: [vars(a) | {"choices": list(a.choices)} for a in proto.arg_specs(t)] for t in proto.ARGS}
        return [d | {"args": specs.get(d["type"], []), "datasets": sorted(self.executor.datasets)
                     if d["needs_dataset"] else []} for d in describe()]

    def status(self) -> dict:
        return self.executor.status()

    def _name(self, peer_id: str) -> str:
        rec = self.node.peers.get(peer_id)
        return rec.name if rec is not None and rec.name else peer_id[:12]

    def _changed(self, task: str, role: str, state: str, peer: str, type_name: str) -> None:
        self.node.events.emit(ev.TASK_CHANGED, task=task, role=role, state=state, peer=peer, type=type_name)


class _Once:
    """A call made at most once: the first of a scheduled callback and a direct call wins."""
    __slots__ = ("call", "args")

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __call__(self) -> None:
        if self.call is not None:
            call, self.call = self.call, None
            call(*self.args)


def _served_row(request: TaskRequest, served: Served, via: str) -> dict:
    """The executor's row of a task it ran (made when the row is written)."""
    statement = served.statement
    pred = statement["predicate"]
    return dict(task=request.task, role=proto.SERVED, type=request.type, peer=request.requester, via=via,
                state="done" if pred["exit"]["status"] == "ok" else "failed", request_digest=request.digest,
                request=request.summary(), created=pred["received"], verified=True, proof=served.proof,
                result=served.result_bytes, result_sha256=statement["subject"][0]["digest"]["sha256"],
                cost=pred["cost"], error=pred["exit"]["message"] or None, ended=pred["ended"])


def _reply_parts(reply) -> tuple[dict, bytes]:
    """(proof, result bytes) of a ``task.result`` body, bounded before anything is hashed."""
    if not isinstance(reply, dict) or reply.keys() != _RESULT_KEYS:
        raise MalformedMessage(f"a {proto.RESULT} body is {{\"proof\", \"result\"}}")
    return reply["proof"], received_result(reply["result"])


def _statement(proof: dict) -> dict | None:
    """The statement inside a stored DSSE proof, for display (verification is separate)."""
    import base64
    import json
    try:
        return json.loads(base64.b64decode(proof["payload"]))
    except (KeyError, TypeError, ValueError):
        return None


def _read_file(name: str, path: str) -> bytes:
    """A file argument (model weights): an absolute path to a regular file, bounded."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise BadRequest(f"{name}: give an absolute path (the node reads the file; its working "
                         f"directory is not yours), got {path!r:.80}")
    try:
        size = os.stat(path).st_size
        if size > MAX_WEIGHTS_BYTES:
            raise MessageTooLarge(f"{name}: {path} is {size} bytes; the limit is {MAX_WEIGHTS_BYTES}")
        with open(path, "rb") as fh:
            data = fh.read(MAX_WEIGHTS_BYTES + 1)
    except OSError as exc:
        raise BadRequest(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_WEIGHTS_BYTES:
        raise MessageTooLarge(f"{name}: {path} is larger than {MAX_WEIGHTS_BYTES} bytes")
    return data
