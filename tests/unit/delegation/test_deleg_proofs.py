"""Execution proofs: DSSE PAE, signing, and every way a proof must be refused."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from core.delegation.encoding import canonical_json, decode_result, encode_result, sha256_hex
from core.delegation.errors import MemoryLimitExceeded, ProofMismatch
from core.delegation.proofs import (PAYLOAD_TYPE, dsse_sign, make_statement, pae, raise_for_exit,
                                    sign_proof, verify_proof)
from core.errors import InvalidSignature, MalformedMessage
from core.identity import Identity

RESULT = encode_result({"text": "hi", "length": 2})
REQ = sha256_hex(b"the request")


@pytest.fixture(scope="module")
def people():
    return Identity.generate("requester"), Identity.generate("executor"), Identity.generate("mallory")


def statement(requester, executor, *, result=RESULT, request=REQ, status="ok", message=""):
    return make_statement(task="ab" * 16, type="echo", request_digest=request, executor=executor.id,
                          requester=requester.id, received=100.0, started=100.5, ended=101.25,
                          cost={"cpu_seconds": 0.03, "wall_seconds": 0.75, "peak_rss_mb": 24.0},
                          quality={}, exit={"status": status, "code": 0, "message": message},
                          result_bytes=result)


def test_pae_matches_the_dsse_spec_example():
    # From the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


def test_round_trip(people):
    requester, executor, _ = people
    st = statement(requester, executor)
    env = sign_proof(executor, st)
    assert env["payloadType"] == PAYLOAD_TYPE
    assert env["signatures"][0]["keyid"] == executor.id
    got = verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)
    assert got == st
    assert got["_type"] == "https://in-toto.io/Statement/v1"
    assert got["subject"] == [{"name": "result", "digest": {"sha256": sha256_hex(RESULT)}}]
    assert got["predicate"]["latency"] == pytest.approx(1.25)
    # The envelope survives a JSON trip (the HTTP form) unchanged.
    assert verify_proof(json.loads(json.dumps(env)), executor=executor.id, request_digest=REQ,
                        result_bytes=RESULT) == st


def test_signature_covers_pae_not_the_bare_payload(people):
    requester, executor, _ = people
    payload = canonical_json(statement(requester, executor))
    env = dsse_sign(executor, PAYLOAD_TYPE, payload)
    env["signatures"][0]["sig"] = base64.b64encode(executor.sign(payload)).decode()
    with pytest.raises(InvalidSignature):
        verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


def test_proof_signed_by_someone_else_is_refused(people):
    requester, executor, mallory = people
    forged = sign_proof(mallory, statement(requester, executor))  # names the executor, signed by mallory
    with pytest.raises(InvalidSignature, match="not signed by the executor"):
        verify_proof(forged, executor=executor.id, request_digest=REQ, result_bytes=RESULT)
    # Claiming the executor's key id does not help.
    forged["signatures"][0]["keyid"] = executor.id
    with pytest.raises(InvalidSignature):
        verify_proof(forged, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


def test_proof_naming_another_executor_is_refused(people):
    requester, executor, mallory = people
    env = sign_proof(executor, statement(requester, mallory))  # the executor signs mallory's name
    with pytest.raises(ProofMismatch, match="names executor"):
        verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


def test_proof_for_another_request_is_refused(people):
    requester, executor, _ = people
    env = sign_proof(executor, statement(requester, executor, request=sha256_hex(b"other")))
    with pytest.raises(ProofMismatch, match="another request"):
        verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


def test_result_whose_digest_differs_is_refused(people):
    requester, executor, _ = people
    env = sign_proof(executor, statement(requester, executor))
    with pytest.raises(ProofMismatch, match="result"):
        verify_proof(env, executor=executor.id, request_digest=REQ,
                     result_bytes=encode_result({"text": "hj", "length": 2}))


def test_tampered_payload_is_refused(people):
    requester, executor, _ = people
    env = sign_proof(executor, statement(requester, executor))
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["cost"]["cpu_seconds"] = 0.0
    tampered = dict(env, payload=base64.b64encode(canonical_json(st)).decode())
    with pytest.raises(InvalidSignature):
        verify_proof(tampered, executor=executor.id, request_digest=REQ, result_bytes=RESULT)
    retyped = dict(env, payloadType="application/json")
    with pytest.raises(MalformedMessage, match="payload type"):
        verify_proof(retyped, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("signatures"),
    lambda e: e.update(signatures=[]),
    lambda e: e.update(signatures=[{"sig": "AA"}] * 5),
    lambda e: e.update(payload="not base64!"),
    lambda e: e.update(payload=base64.b64encode(b"[1, 2]").decode()),
    lambda e: e["signatures"][0].update(sig=12),
    lambda e: e.update(extra=1),
])
def test_malformed_envelopes_are_refused(people, mutate):
    requester, executor, _ = people
    env = copy.deepcopy(sign_proof(executor, statement(requester, executor)))
    mutate(env)
    with pytest.raises((MalformedMessage, InvalidSignature)):
        verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


def test_a_malformed_statement_is_not_signed(people):
    requester, executor, _ = people
    st = statement(requester, executor)
    st["predicate"]["cost"]["cpu_seconds"] = float("nan")
    with pytest.raises(MalformedMessage):
        sign_proof(executor, st)
    st = statement(requester, executor)
    st["predicate"]["started"] = 200.0  # after ended
    with pytest.raises(MalformedMessage, match="started <= ended"):
        sign_proof(executor, st)


@pytest.mark.parametrize("where,value", [
    ("quality", {"accuracy": 10 ** 400}), ("received", 10 ** 400), ("latency", -(10 ** 400)),
    ("cost", {"cpu_seconds": 10 ** 400, "wall_seconds": 0.0, "peak_rss_mb": 0.0}),
], ids=["quality", "received", "latency", "cost"])
def test_a_signed_proof_with_a_number_beyond_any_float_is_refused_as_malformed(people, where, value):
    """JSON carries integers of any size; a proof signed by the executor with one must be refused
    as malformed (was an OverflowError out of math.isfinite: no CoveyError, so the requester
    neither recorded the task as rejected nor answered with a reason)."""
    requester, executor, _ = people
    st = statement(requester, executor)
    st["predicate"][where] = value
    env = dsse_sign(executor, PAYLOAD_TYPE, json.dumps(st, sort_keys=True).encode())
    with pytest.raises(MalformedMessage, match="not an execution proof"):
        verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=RESULT)


@pytest.mark.parametrize("field,value", [
    ("_type", "https://in-toto.io/Statement/v0.1"), ("subject", []),
    ("subject", [{"name": "result", "digest": {"sha256": "AB" * 32}}]), ("predicate", []),
])
def test_statement_fields_are_checked(people, field, value):
    requester, executor, _ = people
    st = statement(requester, executor)
    st[field] = value
    with pytest.raises(MalformedMessage, match="not an execution proof"):
        sign_proof(executor, st)


@pytest.mark.parametrize("field,value", [
    ("executor", "x" * 64), ("requester", None), ("request_digest", "0" * 63), ("task", 7),
    ("type", "t" * 65), ("received", -1.0), ("started", True), ("ended", float("inf")),
    ("latency", float("nan")), ("cost", {"cpu_seconds": 0.0}),
    ("cost", {"cpu_seconds": -0.5, "wall_seconds": 0.0, "peak_rss_mb": 0.0}),
    ("cost", {"cpu_seconds": "1", "wall_seconds": 0.0, "peak_rss_mb": 0.0}),
    ("quality", {"loss": float("inf")}), ("quality", {"loss": False}), ("quality", [1.0]),
    ("exit", {"status": "ok", "code": 1.0, "message": ""}), ("exit", {"status": "ok", "code": 0}),
])
def test_predicate_fields_are_checked(people, field, value):
    requester, executor, _ = people
    st = statement(requester, executor)
    st["predicate"][field] = value
    with pytest.raises(MalformedMessage, match="not an execution proof"):
        sign_proof(executor, st)
    st["predicate"]["extra"] = 1
    with pytest.raises(MalformedMessage, match="predicate fields"):
        sign_proof(executor, st)


def test_failed_run_is_proved_and_raised_as_its_typed_error(people):
    requester, executor, _ = people
    result = encode_result({"error": {"code": "memory_limit", "message": "over 256 MiB"}})
    env = sign_proof(executor, statement(requester, executor, result=result, status="memory_limit",
                                         message="task x exceeded its memory limit of 256 MiB"))
    st = verify_proof(env, executor=executor.id, request_digest=REQ, result_bytes=result)
    with pytest.raises(MemoryLimitExceeded, match="256 MiB"):
        raise_for_exit(st)
    raise_for_exit(verify_proof(sign_proof(executor, statement(requester, executor)),
                                executor=executor.id, request_digest=REQ, result_bytes=RESULT))


# -- canonical JSON ------------------------------------------------------------------------
def test_canonical_json_is_independent_of_key_order_and_compact():
    a = {"b": [1, 2.5, "é"], "a": {"y": None, "x": True}}
    b = {"a": {"x": True, "y": None}, "b": [1, 2.5, "é"]}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":true,"y":null},"b":[1,2.5,"é"]}'.encode()
    assert json.loads(canonical_json(a)) == a


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": float("inf")}, {"x": b"bytes"},
                                 {"x": "\ud800"}, {"x": object()}])
def test_canonical_json_refuses_what_is_not_plain_json(bad):
    with pytest.raises(MalformedMessage):
        canonical_json(bad)


def test_canonical_json_refuses_a_cycle_and_keeps_encoding_after_it():
    """One shared encoder without the circular check: a cycle still ends in a clear refusal."""
    loop: list = []
    loop.append(loop)
    with pytest.raises(MalformedMessage):
        canonical_json({"x": loop})
    assert canonical_json({"b": 1, "a": [2]}) == b'{"a":[2],"b":1}'


def test_decode_result_refuses_non_json_constants_and_non_maps():
    with pytest.raises(MalformedMessage):
        decode_result(b'{"x": NaN}')
    with pytest.raises(MalformedMessage):
        decode_result(b"[1]")
    assert decode_result(encode_result({"a": 1})) == {"a": 1}
