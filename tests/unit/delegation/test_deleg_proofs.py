"""Execution proofs: DSSE PAE, signing, and every way a proof must be refused."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from core.delegation.encoding import canonical_json, decode_result, encode_result, sha256_hex
from core.delegation.errors import MemoryLimitExceeded, ProofMismatch
from core.delegation.proofs import (PAYLOAD_TYPE, _template_payload, _template_statement, execution_payload,
                                    check_statement, dsse_sign, make_statement, pae, raise_for_exit,
                                    read_statement, sign_proof, statement_payload, verify_proof)
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


def test_canonical_json_writes_what_the_json_module_writes():
    """Maps and lists go through the encoder's C part made once: the same text as json.dumps with
    the canonical options, for odd floats, escapes, non-ASCII, nesting and keys that sort oddly."""
    import random
    rng = random.Random(3)
    atoms = [0.0, -0.0, 1e-07, 5e-324, 1e16, 0.1 + 0.2, 2 ** 70, -3, True, False, None, "", 'q"\\b',
             "tab\tnl\n\x00", "ünï ✓ 𝄞", "\u2028"]

    def value(depth):
        pick = rng.random()
        if depth < 3 and pick < 0.25:
            return {rng.choice(["b", "a", "é", "A", "aa", ""]) + str(i): value(depth + 1) for i in range(rng.randrange(4))}
        if depth < 3 and pick < 0.4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return rng.choice(atoms)
    for _ in range(500):
        obj = rng.choice([{}, []]) or value(0)
        obj = obj if isinstance(obj, (dict, list)) else {"v": obj}
        assert canonical_json(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                                 ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert canonical_json("text") == b'"text"' and canonical_json(1.5) == b"1.5"


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


@pytest.mark.parametrize("text", [b'{"a":1}', b' {"a": [1, 2.5, "\\u00e9"]} \n', b'{"a":1}{"b":2}', b'{"a":1} x',
                                  b'{"a":', b'{}', b'{"a":{"b":null}}\t', b'{"a":1', b'{"a":Infinity}'])
def test_decode_result_reads_what_the_json_module_reads(text):
    """One map scanned at once, anything else through the decoder: the same value or a refusal."""
    try:
        expected = json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ValueError, ZeroDivisionError):
        expected = "refused"
    try:
        got = decode_result(text)
    except MalformedMessage:
        got = "refused"
    assert got == expected


def random_statements(requester, executor, count=400):
    """Statements of an executor's shape with odd values (floats, escapes, non-ASCII, exit codes)."""
    for args in random_arguments(requester, executor, count):
        yield make_statement(**args)


def random_arguments(requester, executor, count=400):
    """make_statement's arguments for random_statements."""
    import random
    rng = random.Random(7)
    floats = [0.0, 1e-07, 5e-324, 1e16, 1.7976931348623157e308, 0.1 + 0.2, 1732912345.123456, 3.0]
    texts = ["", "ok", 'quote " and \\ back', "tab\tnew\nline\x00\x1f", "ünïcødé ✓ 𝄞", "\u2028"]
    for _ in range(count):
        received = rng.choice(floats + [rng.random() * 1e9])
        started = received + rng.choice([0.0, rng.random()])
        ended = started + rng.choice([0.0, rng.random(), 1e-07])
        yield dict(task=rng.choice(texts + ["ab" * 16]), type=rng.choice(texts[:5]),
                   request_digest=REQ, executor=executor.id, requester=requester.id,
                   received=received, started=started, ended=ended,
                   cost={k: rng.choice(floats) for k in ("cpu_seconds", "wall_seconds", "peak_rss_mb")},
                   quality={}, exit={"status": rng.choice(texts), "code": rng.choice([None, 0, -9, 2 ** 70]),
                                     "message": rng.choice(texts)},
                   result_bytes=rng.randbytes(rng.randrange(50)))


def test_the_template_writes_exactly_the_canonical_json(people):
    """An executor's statement is written through a template, checked on the way: the same bytes
    as the general encoder for every value it takes (odd floats, escapes, non-ASCII, exit codes),
    and every other statement goes the general way (checked, or refused as check_statement does)."""
    requester, executor, _ = people
    taken = 0
    for st in random_statements(requester, executor):
        check_statement(st)
        assert statement_payload(st) == canonical_json(st)
        taken += _template_payload(st) is not None
    assert taken > 300   # the template did the work (only 2**70 exit codes go the general way)
    # not the plain shape: the general way, same bytes
    st = statement(requester, executor)
    st["predicate"]["quality"] = {"accuracy": 0.5}
    st["predicate"]["cost"]["peak_rss_mb"] = 3   # an int
    assert _template_payload(st) is None and statement_payload(st) == canonical_json(st)
    # a lone surrogate is refused by name, as by the general encoder
    st = statement(requester, executor, message="\ud800")
    with pytest.raises(MalformedMessage, match="canonical JSON"):
        statement_payload(st)


def test_an_executors_payload_is_the_canonical_json_of_its_statement(people):
    """execution_payload writes an executor's run without making the statement: the same bytes as
    canonical_json(make_statement(...)) for every value, the general way (or its refusal) for
    what the template does not take (quality, an int cost, a huge exit code, a lone surrogate)."""
    requester, executor, _ = people
    for args in random_arguments(requester, executor):
        assert execution_payload(**args) == canonical_json(make_statement(**args))
    args = next(random_arguments(requester, executor, 1))
    for change in ({"quality": {"accuracy": 0.5}}, {"cost": {"cpu_seconds": 1, "wall_seconds": 0.5, "peak_rss_mb": 3}},
                   {"exit": {"status": "ok", "code": 2 ** 70, "message": ""}}, {"received": 7}):
        assert execution_payload(**(args | change)) == canonical_json(make_statement(**(args | change)))
    for bad in ({"message": "\ud800"}, {"status": 3}):
        with pytest.raises(MalformedMessage):
            execution_payload(**(args | {"exit": {"status": "ok", "code": 0, "message": ""} | bad}))
    with pytest.raises(MalformedMessage):
        execution_payload(**(args | {"started": args["ended"] + 1.0}))


def _general(payload: bytes):
    """What the JSON parser and check_statement make of a payload: the statement or the refusal."""
    try:
        st = json.loads(payload.decode("utf-8"))
        check_statement(st)
        return st
    except (ValueError, MalformedMessage):
        return "refused"


def test_the_template_reader_gives_what_the_json_parser_gives(people):
    """A payload in the template's text is read by a pattern: the same statement as json.loads
    (key order included) and the same refusals as check_statement, for every payload tried."""
    requester, executor, _ = people
    taken = 0
    for st in random_statements(requester, executor):
        payload = statement_payload(st)
        got = read_statement(payload)
        assert got == st and json.dumps(got) == json.dumps(json.loads(payload))
        taken += _template_statement(payload.decode()) is not None
    assert taken > 40   # strings with escapes go to the parser; the plain ones were read here
    good = statement_payload(statement(requester, executor)).decode()
    assert _template_statement(good) == statement(requester, executor)
    cases = [good.replace('"received":100.0', '"received":1e999'),        # beyond a float
             good.replace('"started":100.5', '"started":200.5'),          # after ended
             good.replace('"type":"echo"', '"type":"' + "t" * 65 + '"'),  # too long
             good.replace('"received":100.0', '"received":0100.0'),      # not JSON
             good.replace('"received":100.0', '"received":100'),         # an integer: the parser's
             good.replace('"received":100.0', '"received":-100.0'),      # negative
             good.replace('"code":0', '"code":' + "9" * 30),              # a big integer: the parser's
             good.replace('"code":0', '"code":-0'),
             good.replace(',"task"', ', "task"'),                         # other layout
             good.replace('"task":"', '"task":"\\u0041'),              # an escape
             good + " "]
    for text in cases:
        payload = text.encode()
        expected = _general(payload)
        if expected == "refused":
            with pytest.raises(MalformedMessage):
                read_statement(payload)
        else:
            assert read_statement(payload) == expected
