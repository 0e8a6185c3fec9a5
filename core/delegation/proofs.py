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
from json.encoder import encode_basestring as _json_str   # ensure_ascii=False, as canonical_json

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
_SUBJECT_KEYS = frozenset({"name", "digest"})
_DSSE_KEYS = frozenset({"payloadType", "payload", "signatures"})
_DIGEST_KEYS = frozenset({"sha256"})
_TIME_KEYS = ("received", "started", "ended", "latency")
_MAX_INT = 2 ** 63   # larger integers are no numbers a proof carries (and no float holds them exactly)
_typeof = type       # (execution_payload's ``type`` argument shadows it)


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
    if not isinstance(envelope, dict) or envelope.keys() != _DSSE_KEYS:
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
    return sign_payload(identity, statement_payload(statement))


def sign_payload(identity, payload: bytes) -> dict:
    """Sign a statement's payload (:func:`statement_payload`, :func:`execution_payload`) as a DSSE
    envelope; MessageTooLarge over :data:`MAX_PAYLOAD`."""
    if len(payload) > MAX_PAYLOAD:
        raise MessageTooLarge(f"the proof is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    return dsse_sign(identity, PAYLOAD_TYPE, payload)


def statement_payload(st) -> bytes:
    """``canonical_json(st)`` of a statement that passes :func:`check_statement` (else raise it).

    A statement as :func:`make_statement` makes it from plain values (exact floats for times and
    cost, no quality: an executor's echo) is checked and written in one pass through a template,
    byte for byte what the general encoder writes; any other goes the general way."""
    try:
        payload = _template_payload(st)
    except (KeyError, TypeError, AttributeError):
        payload = None
    if payload is None:
        check_statement(st)
        return canonical_json(st)
    return payload


def _template_payload(st) -> bytes | None:
    """The canonical JSON of ``st`` when it has the plain shape and values check_statement
    accepts (None when it does not: the general path then checks and refuses or encodes it)."""
    if type(st) is not dict or st.keys() != _STATEMENT_KEYS or st["_type"] != STATEMENT_TYPE \
            or st["predicateType"] != PREDICATE_TYPE:
        return None
    subject, p = st["subject"], st["predicate"]
    if type(subject) is not list or len(subject) != 1 or type(subject[0]) is not dict \
            or subject[0].keys() != _SUBJECT_KEYS or subject[0]["name"] != "result" \
            or type(p) is not dict or p.keys() != _PREDICATE_KEYS:
        return None
    digest, cost, ex = subject[0]["digest"], p["cost"], p["exit"]
    if type(digest) is not dict or digest.keys() != _DIGEST_KEYS or type(cost) is not dict \
            or cost.keys() != _COST_KEYS or type(ex) is not dict or ex.keys() != _EXIT_KEYS \
            or p["quality"] != {} or type(p["quality"]) is not dict:
        return None
    return _write_template(p["task"], p["type"], p["request_digest"], p["executor"], p["requester"],
                           p["received"], p["started"], p["ended"], p["latency"], cost["cpu_seconds"],
                           cost["peak_rss_mb"], cost["wall_seconds"], ex["code"], ex["status"],
                           ex["message"], digest["sha256"])


def execution_payload(*, task: str, type: str, request_digest: str, executor: str, requester: str,
                      received: float, started: float, ended: float, cost: dict, quality: dict,
                      exit: dict, result_bytes: bytes) -> bytes:
    """``statement_payload(make_statement(...))`` (same arguments), without making the statement
    when it has the template's shape (an executor's run without quality): its values are checked
    and written at once. ``cost`` is a :meth:`Cost.to_dict`-shaped map, ``exit`` status, code, message."""
    if not quality and _typeof(cost) is dict and cost.keys() == _COST_KEYS and _typeof(exit) is dict \
            and exit.keys() == _EXIT_KEYS and _typeof(ended) is float and _typeof(received) is float:
        payload = _write_template(task, type, request_digest, executor, requester, received, started, ended,
                                  max(0.0, ended - received), cost["cpu_seconds"], cost["peak_rss_mb"],
                                  cost["wall_seconds"], exit["code"], exit["status"], exit["message"],
                                  sha256_hex(result_bytes))
        if payload is not None:
            return payload
    return statement_payload(make_statement(
        task=task, type=type, request_digest=request_digest, executor=executor, requester=requester,
        received=received, started=started, ended=ended, cost=cost, quality=quality, exit=exit,
        result_bytes=result_bytes))


def _write_template(task, kind, rd, executor, requester, received, started, ended, latency, cpu, rss, wall,
                    code, status, message, sha) -> bytes | None:
    """The template's text of a statement with these values and no quality, when every value is
    one check_statement accepts and the template writes as canonical_json does; else None."""
    if not (type(sha) is str and _SHA256.fullmatch(sha) and type(rd) is str and _SHA256.fullmatch(rd)
            and type(task) is str and type(kind) is str and len(kind) <= 64
            and is_peer_id(executor) and is_peer_id(requester)):
        return None
    for value in (received, started, ended, latency, cpu, rss, wall):
        if type(value) is not float or not 0.0 <= value < math.inf:
            return None
    if not (started <= ended and (code is None or type(code) is int and -_MAX_INT <= code <= _MAX_INT)
            and type(status) is str and type(message) is str):
        return None
    text = (f'{{"_type":"{STATEMENT_TYPE}","predicate":{{"cost":{{"cpu_seconds":{cpu!r},'
            f'"peak_rss_mb":{rss!r},"wall_seconds":{wall!r}}},"ended":{ended!r},'
            f'"executor":"{executor}","exit":{{"code":{"null" if code is None else int.__repr__(code)},'
            f'"message":{_json_str(message)},"status":{_json_str(status)}}},"latency":{latency!r},'
            f'"quality":{{}},"received":{received!r},"request_digest":"{rd}",'
            f'"requester":"{requester}","started":{started!r},"task":{_json_str(task)},'
            f'"type":{_json_str(kind)}}},"predicateType":"{PREDICATE_TYPE}",'
            f'"subject":[{{"digest":{{"sha256":"{sha}"}},"name":"result"}}]}}')
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate: the general encoder refuses it by name
        return None


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
    statement = read_statement(dsse_open(envelope, executor, PAYLOAD_TYPE))
    pred = statement["predicate"]
    if pred["executor"] != executor:
        raise ProofMismatch(f"the proof names executor {pred['executor'][:16]}, not {executor[:16]}")
    if pred["request_digest"] != request_digest:
        raise ProofMismatch(f"the proof is for another request (digest {pred['request_digest'][:16]}, "
                            f"ours {str(request_digest)[:16]})")
    if result_sha256 != statement["subject"][0]["digest"]["sha256"]:
        raise ProofMismatch("the result received does not match the digest in the proof")
    return statement


def read_statement(payload: bytes) -> dict:
    """The statement in a proof's payload, checked (:func:`check_statement`); MalformedMessage if
    it is not one. A payload as :func:`statement_payload` writes it through its template is read
    by a pattern of that text (the same statement as the JSON parser gives, the same checks);
    any other goes through the JSON parser."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"the proof payload is not JSON: {exc}") from exc
    statement = _template_statement(text)
    if statement is None:
        try:
            statement = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise MalformedMessage(f"the proof payload is not JSON: {exc}") from exc
        check_statement(statement)
    return statement


# The template's text: JSON numbers written as repr writes a float (never an integer form), strings
# without escapes (any other JSON string, or any other layout, goes through the JSON parser).
_FLOAT = r"((?:0|[1-9][0-9]*)(?:\.[0-9]+(?:e[-+][0-9]+)?|e[-+][0-9]+))"
_TEXT = r'"([^"\\\x00-\x1f]*)"'
_HEX = r'"([0-9a-f]{64})"'
_CODE = r"(null|-?(?:0|[1-9][0-9]{0,17}))"
_TEMPLATE = re.compile("".join(part if part in (_FLOAT, _TEXT, _HEX, _CODE) else re.escape(part) for part in (
    '{"_type":"' + STATEMENT_TYPE + '","predicate":{"cost":{"cpu_seconds":', _FLOAT, ',"peak_rss_mb":',
    _FLOAT, ',"wall_seconds":', _FLOAT, '},"ended":', _FLOAT, ',"executor":', _HEX, ',"exit":{"code":',
    _CODE, ',"message":', _TEXT, ',"status":', _TEXT, '},"latency":', _FLOAT, ',"quality":{},"received":',
    _FLOAT, ',"request_digest":', _HEX, ',"requester":', _HEX, ',"started":', _FLOAT, ',"task":', _TEXT,
    ',"type":', _TEXT, '},"predicateType":"' + PREDICATE_TYPE + '","subject":[{"digest":{"sha256":',
    _HEX, '},"name":"result"}]}')))


def _template_statement(text: str) -> dict | None:
    """The statement of a payload in the template's text that passes check_statement, else None."""
    m = _TEMPLATE.fullmatch(text)
    if m is None:
        return None
    (cpu, rss, wall, ended, executor, code, message, status, latency, received, request_digest,
     requester, started, task, kind, sha) = m.groups()
    times = [float(cpu), float(rss), float(wall), float(ended), float(latency), float(received), float(started)]
    for value in times:
        if not value < math.inf:   # a number beyond a float: refused, by name, on the general path
            return None
    if not times[6] <= times[3] or len(kind) > 64:
        return None
    predicate = {"cost": {"cpu_seconds": times[0], "peak_rss_mb": times[1], "wall_seconds": times[2]},
                 "ended": times[3], "executor": executor,
                 "exit": {"code": None if code == "null" else int(code), "message": message, "status": status},
                 "latency": times[4], "quality": {}, "received": times[5], "request_digest": request_digest,
                 "requester": requester, "started": times[6], "task": task, "type": kind}
    return {"_type": STATEMENT_TYPE, "predicate": predicate, "predicateType": PREDICATE_TYPE,
            "subject": [{"digest": {"sha256": sha}, "name": "result"}]}


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
