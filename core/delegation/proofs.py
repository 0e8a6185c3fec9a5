"""Execution proofs: an in-toto statement in a DSSE envelope, signed with the node's Ed25519 key.

DSSE (github.com/secure-systems-lab/dsse): the signature covers
``PAE(payloadType, payload)`` = ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``
(LEN as ASCII decimal byte counts), never the bare payload, so bytes signed
for one payload type are never valid for another. The envelope is
``{"payloadType", "payload": base64, "signatures": [{"keyid": peer id, "sig": base64}]}``.

The statement: ``_type`` in-toto Statement v1, ``subject`` = the result bytes
(name "result", sha256 digest), ``predicateType`` ExecutionProof v1 and a
predicate naming task, type, request digest, executor, requester, times,
latency, cost, quality and exit status.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re

from core.delegation.encoding import canonical_json, sha256_hex
from core.delegation.errors import EXIT_ERRORS, ProofMismatch, TaskFailed
from core.errors import InvalidSignature, MalformedMessage, MessageTooLarge
from core.identity import is_peer_id, verify

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://covey.dev/ExecutionProof/v1"
MAX_PAYLOAD = 64 * 1024
MAX_SIGNATURES = 4
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PREDICATE_KEYS = frozenset({"task", "type", "request_digest", "executor", "requester", "received",
                             "started", "ended", "latency", "cost", "quality", "exit"})
_COST_KEYS = frozenset({"cpu_seconds", "wall_seconds", "peak_rss_mb"})
_STATEMENT_KEYS = frozenset({"_type", "subject", "predicateType", "predicate"})
_EXIT_KEYS = frozenset({"status", "code", "message"})
_TIME_KEYS = ("received", "started", "ended", "latency")
_MAX_INT = 2 ** 63   # larger integers are no numbers a proof carries (and no float holds them exactly)


# -- DSSE ------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_sign(identity, payload_type: str, payload: bytes) -> dict:
    """A DSSE envelope over ``payload`` with one signature by ``identity``."""
    sig = identity.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": identity.id, "sig": base64.b64encode(sig).decode("ascii")}]}


def _b64(value, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > limit * 4 // 3 + 4:
        raise MalformedMessage(f"DSSE {what} must be base64 text of at most {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedMessage(f"DSSE {what} is not valid base64") from exc


def dsse_open(envelope, signer: str, payload_type: str) -> bytes:
    """The payload of ``envelope`` if one of its signatures is ``signer``'s; else raise.

    MalformedMessage for a bad shape or another payload type; InvalidSignature
    when no signature verifies under ``signer``'s key (naming who claims to sign).
    """
    if not isinstance(envelope, dict) or set(envelope) != {"payloadType", "payload", "signatures"}:
        raise MalformedMessage("a DSSE envelope has exactly payloadType, payload and signatures")
    if envelope["payloadType"] != payload_type:
        raise MalformedMessage(f"expected DSSE payload type {payload_type}, got {envelope['payloadType']!r:.80}")
    payload = _b64(envelope["payload"], "payload", MAX_PAYLOAD)
    if len(payload) > MAX_PAYLOAD:
        raise MessageTooLarge(f"DSSE payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= MAX_SIGNATURES \
            or not all(isinstance(s, dict) and isinstance(s.get("keyid", ""), str) for s in sigs):
        raise MalformedMessage(f"DSSE signatures must be a list of 1 to {MAX_SIGNATURES} maps")
    data = pae(payload_type, payload)
    for entry in sigs:
        try:
            verify(signer, data, _b64(entry.get("sig"), "signature", 64))
            return payload
        except (InvalidSignature, MalformedMessage):
            continue
    claimed = ", ".join(str(s.get("keyid", "?"))[:16] for s in sigs)
    raise InvalidSignature(f"invalid signature: the proof is not signed by the executor "
                           f"{signer[:16]} (signed as {claimed})")


# -- the statement ------------------------------------------------------------------------
def make_statement(*, task: str, type: str, request_digest: str, executor: str, requester: str,
                   received: float, started: float, ended: float, cost: dict, quality: dict,
                   exit: dict, result_bytes: bytes) -> dict:
    """The in-toto statement of one execution (see the module docstring)."""
    predicate = {"task": task, "type": type, "request_digest": request_digest,
                 "executor": executor, "requester": requester, "received": received,
                 "started": started, "ended": ended, "latency": max(0.0, ended - received),
                 "cost": cost, "quality": quality, "exit": exit}
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": "result", "digest": {"sha256": sha256_hex(result_bytes)}}],
            "predicateType": PREDICATE_TYPE, "predicate": predicate}


def sign_proof(identity, statement: dict) -> dict:
    """Sign ``statement`` (checked first) as a DSSE envelope."""
    check_statement(statement)
    payload = canonical_json(statement)
    if len(payload) > MAX_PAYLOAD:
        raise MessageTooLarge(f"the proof is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    return dsse_sign(identity, PAYLOAD_TYPE, payload)


def verify_proof(envelope, *, executor: str, request_digest: str, result_bytes: bytes) -> dict:
    """The statement of a proof that ``executor`` signed for this request and these result bytes.

    Raises InvalidSignature (not signed by the executor, or tampered),
    MalformedMessage (not a proof) or ProofMismatch (another request, another
    executor named inside, or a result whose digest differs).
    """
    if not isinstance(result_bytes, (bytes, bytearray)):
        raise ProofMismatch("the result received is not bytes")
    return verify_proof_digest(envelope, executor=executor, request_digest=request_digest,
                               result_sha256=sha256_hex(result_bytes))


def verify_proof_digest(envelope, *, executor: str, request_digest: str, result_sha256: str) -> dict:
    """:func:`verify_proof` for a result known by its sha256 hex digest (a stored proof whose
    result bytes were not kept)."""
    if not is_peer_id(executor):
        raise MalformedMessage("the executor must be a peer id")
    payload = dsse_open(envelope, executor, PAYLOAD_TYPE)
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedMessage(f"the proof payload is not JSON: {exc}") from exc
    check_statement(statement)
    pred = statement["predicate"]
    if pred["executor"] != executor:
        raise ProofMismatch(f"the proof names executor {pred['executor'][:16]}, not {executor[:16]}")
    if pred["request_digest"] != request_digest:
        raise ProofMismatch(f"the proof is for another request (digest {pred['request_digest'][:16]}, "
                            f"ours {str(request_digest)[:16]})")
    if result_sha256 != statement["subject"][0]["digest"]["sha256"]:
        raise ProofMismatch("the result received does not match the digest in the proof")
    return statement


def check_statement(st) -> None:
    """MalformedMessage unless ``st`` is a well-formed execution-proof statement."""
    def bad(why: str) -> MalformedMessage:
        return MalformedMessage(f"not an execution proof: {why}")
    # Flat and without helpers: it runs twice per task (the executor signs, the requester verifies).
    if not isinstance(st, dict) or st.keys() != _STATEMENT_KEYS:
        raise bad("a statement has _type, subject, predicateType and predicate")
    if st["_type"] != STATEMENT_TYPE or st["predicateType"] != PREDICATE_TYPE:
        raise bad(f"statement type {st['_type']!r:.60} / predicate type {st['predicateType']!r:.60}")
    subject = st["subject"]
    if not (isinstance(subject, list) and len(subject) == 1 and isinstance(subject[0], dict)
            and subject[0].get("name") == "result" and isinstance(subject[0].get("digest"), dict)
            and isinstance(subject[0]["digest"].get("sha256"), str)
            and _SHA256.fullmatch(subject[0]["digest"]["sha256"])):
        raise bad("the subject must be one result with a sha256 digest")
    p = st["predicate"]
    if not isinstance(p, dict) or p.keys() != _PREDICATE_KEYS:
        raise bad(f"predicate fields must be {sorted(_PREDICATE_KEYS)}")
    if not is_peer_id(p["executor"]) or not is_peer_id(p["requester"]):
        raise bad(f"{'executor' if not is_peer_id(p['executor']) else 'requester'} is not a peer id")
    if not isinstance(p["request_digest"], str) or not _SHA256.fullmatch(p["request_digest"]):
        raise bad("request_digest must be 64 hex digits")
    if not isinstance(p["task"], str) or not isinstance(p["type"], str) or len(p["type"]) > 64:
        raise bad("task and type must be text")
    for key in _TIME_KEYS:
        value = p[key]
        if not (type(value) is float and 0.0 <= value < math.inf or _non_negative(value)):
            raise bad("times must be non-negative numbers with started <= ended")
    if not p["started"] <= p["ended"]:
        raise bad("times must be non-negative numbers with started <= ended")
    cost = p["cost"]
    if not isinstance(cost, dict) or cost.keys() != _COST_KEYS:
        raise bad(f"cost must have {sorted(_COST_KEYS)} as non-negative numbers")
    for value in cost.values():
        if not (type(value) is float and 0.0 <= value < math.inf or _non_negative(value)):
            raise bad(f"cost must have {sorted(_COST_KEYS)} as non-negative numbers")
    quality = p["quality"]
    if not isinstance(quality, dict):
        raise bad("quality must map names to numbers")
    for value in quality.values():
        if not _finite(value):
            raise bad("quality must map names to numbers")
    ex = p["exit"]
    if not (isinstance(ex, dict) and ex.keys() == _EXIT_KEYS and isinstance(ex["status"], str)
            and (ex["code"] is None or type(ex["code"]) is int) and isinstance(ex["message"], str)):
        raise bad("exit must have status (text), code (int or null) and message (text)")


def _finite(value) -> bool:
    """A number a float can hold (never a bool): JSON integers of any size are refused here,
    not raised as OverflowError."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_MAX_INT <= value <= _MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def _non_negative(value) -> bool:
    """A finite number >= 0 (never a bool). The exact types take one test: a NaN fails both
    comparisons, an infinity the second."""
    if type(value) is float:
        return 0 <= value < math.inf
    return _finite(value) and value >= 0


def raise_for_exit(statement: dict) -> None:
    """Raise the typed error a verified proof reports, if its exit status is not "ok"."""
    ex = statement["predicate"]["exit"]
    if ex["status"] != "ok":
        raise EXIT_ERRORS.get(ex["status"], TaskFailed)(ex["message"] or f"task ended with {ex['status']}")
