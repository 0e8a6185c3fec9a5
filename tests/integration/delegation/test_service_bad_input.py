"""Bad input to and from the delegation service between real nodes: each is refused with a
reason that names its cause, nothing runs that should not, and the node keeps serving."""
from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from core.delegation.errors import ExecutorBusy, MemoryLimitExceeded, ProofMismatch, TaskTimedOut, UnknownTaskType
from core.delegation.executor import Executor
from core.delegation.http import request_body
from core.delegation.proofs import PAYLOAD_TYPE, dsse_sign, make_statement, sign_proof
from core.delegation.protocol import HTTP_PATH, SIGNER_HEADER
from core.delegation.request import build_request
from core.errors import (InvalidSignature, MessageTooLarge, PeerBanned, RateLimited, RefusedByPolicy,
                         ReplayDetected, UnknownPeer)
from core.identity import Identity
from core.signed import seal
from tests.integration.delegation import hostile_child

from ..conftest import address, wait_until


async def still_serves(alice, bob) -> None:
    view = await alice.service("delegation").run("bob", "echo", {"text": "still here"})
    assert view["verified"] and view["result"]["text"] == "still here"


async def post(node, body: bytes, signer: str, **headers) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{address(node)}{HTTP_PATH}", data=body,
                                headers={SIGNER_HEADER: signer, **headers}) as resp:
            return resp.status, await resp.json()


def counters(node) -> dict:
    return dict(node.service("delegation").executor.counters)


# -- who may delegate ---------------------------------------------------------------------
@pytest.mark.parametrize("tier", ["sandbox", "external", "unknown"])
async def test_a_requester_below_core_is_refused_naming_the_tier(core_pair, tier):
    alice, bob = core_pair
    bob.trust(alice.identity.id, tier)
    with pytest.raises(RefusedByPolicy, match=f"refused by policy: only CORE peers may delegate tasks "
                                              f"to this node; you are {tier.upper()}"):
        await alice.service("delegation").run("bob", "echo", {"text": "let me in"})
    sent = build_request(alice.identity, "echo", {"text": "over HTTP"})
    status, doc = await post(bob, request_body(sent), alice.identity.id)
    assert status == 403 and doc["error"]["code"] == "refused_by_policy"
    assert doc["error"]["message"].endswith(f"you are {tier.upper()}")
    assert counters(bob) == {} and bob.service("delegation").list() == []   # nothing ran
    assert alice.service("delegation").list()[0]["state"] == "refused"
    bob.trust(alice.identity.id, "core")
    await still_serves(alice, bob)


async def test_http_refuses_a_stranger_or_a_banned_signer_before_reading_the_body(core_pair):
    alice, bob = core_pair
    stranger = Identity.generate("stranger")
    # Content-Length says 1 GB and no body follows: refused on the headers alone.
    reader, writer = await asyncio.open_connection("127.0.0.1", bob.transport.port)
    writer.write(f"POST {HTTP_PATH} HTTP/1.1\r\nHost: x\r\n{SIGNER_HEADER}: {stranger.id}\r\n"
                 f"Content-Length: 1000000000\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 403")
    writer.close()
    status, doc = await post(bob, b"{}", stranger.id)
    assert status == 403 and doc["error"]["message"].endswith("you are UNKNOWN")
    status, doc = await post(bob, b"{}", "not an id")
    assert status == 400 and SIGNER_HEADER in doc["error"]["message"]
    carol = Identity.generate("carol")
    bob.peers.add_or_update(carol.id, name="carol")
    bob.peers.ban(carol.id)
    status, doc = await post(bob, request_body(build_request(carol, "echo", {"text": "x"})), carol.id)
    assert status == 403 and doc["error"]["code"] == "banned"
    await still_serves(alice, bob)


async def test_http_body_limits(core_pair):
    alice, bob = core_pair
    async with aiohttp.ClientSession() as session:
        url = f"http://{address(bob)}{HTTP_PATH}"
        async with session.post(url, data=b"x" * (13 << 20), headers={SIGNER_HEADER: alice.identity.id}) as resp:
            assert resp.status == 413 and "the limit is" in (await resp.json())["error"]["message"]
    status, doc = await post(bob, b"not json", alice.identity.id)
    assert status == 400 and "not the JSON form" in doc["error"]["message"]
    status, doc = await post(bob, b'{"request": {"nonce": {"$base64": "!!"}}}', alice.identity.id)
    assert status == 400 and "base64" in doc["error"]["message"]
    await still_serves(alice, bob)


async def test_the_signer_must_be_the_sender(core_pair, make_node):
    """A CORE peer cannot make bob run a request that someone else signed."""
    alice, bob = core_pair
    carol = Identity.generate("carol")
    foreign = build_request(carol, "echo", {"text": "signed by carol"})
    with pytest.raises(RefusedByPolicy, match="signed by .* not by its sender"):
        await alice.request(bob.identity.id, "task.request", {"request": foreign.envelope})
    status, doc = await post(bob, request_body(foreign), alice.identity.id)
    assert status == 403 and "not by its sender" in doc["error"]["message"]
    assert counters(bob) == {}


# -- the request itself ---------------------------------------------------------------------
async def test_an_invalid_signature_is_refused_link_and_http(core_pair):
    alice, bob = core_pair
    sent = build_request(alice.identity, "echo", {"text": "original"})
    tampered = {**sent.envelope, "body": {**sent.envelope["body"], "args": {"text": "tampered"}}}
    tampered["body"]["inputs"] = {}
    with pytest.raises(InvalidSignature):
        await alice.request(bob.identity.id, "task.request", {"request": tampered})
    sent2 = build_request(alice.identity, "echo", {"text": "original"})
    tampered2 = {**sent2.envelope, "body": {**sent2.envelope["body"], "args": {"text": "tampered"}}}
    status, doc = await post(bob, request_body(type("S", (), {"envelope": tampered2})), alice.identity.id)
    assert status == 401 and doc["error"]["code"] == "invalid_signature"
    assert counters(bob) == {}
    assert bob.peers.get(alice.identity.id).reputation < 0.5   # dishonest input costs reputation
    await still_serves(alice, bob)


async def test_a_replayed_task_is_refused_link_and_http(core_pair):
    alice, bob = core_pair
    sent = build_request(alice.identity, "echo", {"text": "once"})
    reply = await alice.request(bob.identity.id, "task.request", {"request": sent.envelope})
    assert set(reply) == {"proof", "result"}
    with pytest.raises(ReplayDetected, match="seen before"):
        await alice.request(bob.identity.id, "task.request", {"request": sent.envelope})
    status, doc = await post(bob, request_body(sent), alice.identity.id)
    assert status == 409 and doc["error"]["code"] == "replay"
    fresh = build_request(alice.identity, "echo", {"text": "by HTTP once"})
    assert (await post(bob, request_body(fresh), alice.identity.id))[0] == 200
    status, doc = await post(bob, request_body(fresh), alice.identity.id)
    assert status == 409 and "seen before (replay)" in doc["error"]["message"]
    assert counters(bob) == {"served": 2}
    # One replay over the link (alice's own, authenticated) cost her; the two over HTTP, which
    # anyone who saw the request could send, did not.
    assert bob.peers.get(alice.identity.id).reputation == pytest.approx(0.4)
    await still_serves(alice, bob)


async def test_an_unknown_task_type_is_refused_naming_the_known_ones(core_pair):
    alice, bob = core_pair

    def request(kind):
        return seal(alice.identity, "task.request", {"task": "ab" * 16, "type": kind, "args": {},
                                                     "inputs": {}, "deadline": __import__("time").time() + 30})
    with pytest.raises(UnknownTaskType, match="unknown task type 'shell.exec': this executor runs "
                                              "bench.probe, dataset.digest, dataset.stats, echo"):
        await alice.request(bob.identity.id, "task.request", {"request": request("shell.exec")})
    status, doc = await post(bob, request_body(type("S", (), {"envelope": request("rm -rf")})),
                             alice.identity.id)
    assert status == 400 and doc["error"]["code"] == "unknown_task_type"
    with pytest.raises(UnknownTaskType):   # and the requester's own side checks before sending
        await alice.service("delegation").run("bob", "shell.exec", {})
    await still_serves(alice, bob)


async def test_an_unknown_peer_is_named(core_pair):
    alice, bob = core_pair
    with pytest.raises(UnknownPeer, match="no peer matches 'nobody'"):
        await alice.service("delegation").run("nobody", "echo", {"text": "x"})


async def test_a_dataset_path_from_the_network_is_never_read(core_pair):
    alice, bob = core_pair
    with pytest.raises(Exception, match="unknown dataset '/etc/passwd': this executor offers digits, synthetic"):
        await alice.service("delegation").run("bob", "dataset.digest", {"dataset": "/etc/passwd"})


# -- limits ------------------------------------------------------------------------------------
async def test_a_task_past_its_time_limit_is_stopped_with_a_signed_proof(core_pair):
    alice, bob = core_pair
    with pytest.raises(TaskTimedOut, match=r"timed out after 1(\.\d+)? s|timed out after 0\.9\d* s"):
        await alice.service("delegation").run("bob", "bench.probe", {"ms": 5000, "n": 64}, timeout=1.0)
    row = alice.service("delegation").list()[0]
    assert row["state"] == "failed" and row["verified"] is True and "wall-clock" in row["error"]
    shown = alice.service("delegation").show(row["task"])
    assert shown["verification"]["verified"] and shown["proof"]["statement"]["predicate"]["exit"]["status"] == "task_timeout"
    await still_serves(alice, bob)


async def test_a_task_past_its_memory_limit_is_stopped_with_a_signed_proof(core_pair):
    alice, bob = core_pair
    service = bob.service("delegation")
    service.executor = Executor(bob.identity, types=hostile_child.TYPES, child_module=hostile_child.__name__)
    sent = build_request(alice.identity, "test.alloc", {"mb": 2048}, types=hostile_child.TYPES)
    with pytest.raises(MemoryLimitExceeded, match="exceeded its memory limit of 512 MiB"):
        await alice.service("delegation").deliver(bob.identity.id, sent)
    row = alice.service("delegation").show(sent.task)
    assert row["state"] == "failed" and row["verification"]["verified"] is True
    await still_serves(alice, bob)


async def test_a_flood_from_one_peer_is_rate_limited_while_another_peer_is_served(core_pair, make_node):
    alice, bob = core_pair
    executor = bob.service("delegation").executor
    executor.rate.clock = lambda: 5000.0        # frozen: no token comes back during the test
    outcomes = await asyncio.gather(*(alice.service("delegation").run("bob", "echo", {"text": str(i)})
                                      for i in range(12)), return_exceptions=True)
    limited = [o for o in outcomes if isinstance(o, RateLimited)]
    assert sum(isinstance(o, dict) and o["verified"] for o in outcomes) == executor.rate.burst == 4
    assert len(limited) == 8 and all("try again in" in str(e) for e in limited)
    carol = await make_node("carol")
    await carol.add_peer(address(bob), name="bob")
    await wait_until(lambda: carol.identity.id in bob.connections)
    bob.trust(carol.identity.id, "core")
    assert (await carol.service("delegation").run("bob", "echo", {"text": "me too"}))["verified"]
    states = [t["state"] for t in alice.service("delegation").list()]
    assert states.count("refused") == 8 and states.count("done") == 4


async def test_a_busy_executor_says_so(core_pair):
    alice, bob = core_pair
    bob.service("delegation").executor.per_peer = 1
    outcomes = await asyncio.gather(*(alice.service("delegation").run("bob", "bench.probe", {"ms": 300, "n": 8})
                                      for _ in range(2)), return_exceptions=True)
    busy = [o for o in outcomes if isinstance(o, ExecutorBusy)]
    assert len(busy) == 1 and "executor busy" in str(busy[0])
    await still_serves(alice, bob)


# -- a dishonest executor -----------------------------------------------------------------------
def forge(bob, answer):
    """Replace bob's task.request handler by ``answer(request envelope) -> reply body``."""
    async def handler(peer, body):
        return answer(body["request"])
    bob.on_message("task.request", handler)


def honest_statement(bob, envelope, result: bytes) -> dict:
    from core.delegation.request import request_digest
    body = envelope["body"]
    return make_statement(task=body["task"], type=body["type"], request_digest=request_digest(envelope),
                          executor=bob.identity.id, requester=envelope["signer"], received=1.0, started=1.0,
                          ended=1.1, cost={"cpu_seconds": 0.0, "wall_seconds": 0.1, "peak_rss_mb": 0.0},
                          quality={}, exit={"status": "ok", "code": 0, "message": ""}, result_bytes=result)


async def test_a_proof_signed_by_someone_other_than_the_executor_is_rejected(core_pair):
    alice, bob = core_pair
    mallory = Identity.generate("mallory")
    result = b'{"length":1,"text":"x"}'

    def answer(envelope):
        import json
        payload = json.dumps(honest_statement(bob, envelope, result), sort_keys=True, separators=(",", ":")).encode()
        return {"proof": dsse_sign(mallory, PAYLOAD_TYPE, payload), "result": result}
    forge(bob, answer)
    before = alice.peers.get(bob.identity.id).reputation
    with pytest.raises(InvalidSignature, match="not signed by the executor"):
        await alice.service("delegation").run("bob", "echo", {"text": "x"})
    row = alice.service("delegation").list()[0]
    assert row["state"] == "rejected" and row["verified"] is False
    shown = alice.service("delegation").show(row["task"])
    assert shown["verification"]["verified"] is False and "not signed by the executor" in shown["verification"]["reason"]
    assert alice.peers.get(bob.identity.id).reputation < before


async def test_a_proof_for_another_request_is_rejected(core_pair):
    alice, bob = core_pair
    first = {}

    def answer(envelope):
        result = b'{"length":5,"text":"first"}'
        if not first:   # answer every request with the proof of the first one
            first.update(proof=sign_proof(bob.identity, honest_statement(bob, envelope, result)), result=result)
        return dict(first)
    forge(bob, answer)
    assert (await alice.service("delegation").run("bob", "echo", {"text": "first"}))["verified"]
    with pytest.raises(ProofMismatch, match="the proof is for another request"):
        await alice.service("delegation").run("bob", "echo", {"text": "second"})
    assert alice.service("delegation").list()[0]["state"] == "rejected"


async def test_a_result_that_does_not_match_its_proof_is_rejected(core_pair):
    alice, bob = core_pair

    def answer(envelope):
        proof = sign_proof(bob.identity, honest_statement(bob, envelope, b'{"length":1,"text":"x"}'))
        return {"proof": proof, "result": b'{"length":1,"text":"y"}'}
    forge(bob, answer)
    with pytest.raises(ProofMismatch, match="does not match the digest in the proof"):
        await alice.service("delegation").run("bob", "echo", {"text": "x"})


async def test_an_oversized_result_is_rejected_before_it_is_hashed(core_pair):
    alice, bob = core_pair
    big = b'{"text":"' + b"x" * (2 << 20) + b'"}'

    def answer(envelope):
        return {"proof": sign_proof(bob.identity, honest_statement(bob, envelope, big)), "result": big}
    forge(bob, answer)
    with pytest.raises(MessageTooLarge, match=r"result of \d+ bytes; the limit is 1048576"):
        await alice.service("delegation").run("bob", "echo", {"text": "x"})
    assert alice.service("delegation").list()[0]["state"] == "rejected"


async def test_http_numbers_beyond_any_float_are_refused_as_malformed(core_pair):
    """JSON carries integers of any size (msgpack on a link never more than 64 bits): a request
    whose time or deadline is one gets a 400 naming it (was an OverflowError out of
    math.isfinite in the admission step: a 500 with no reason), and the node keeps serving."""
    import json

    from core.delegation.protocol import to_json_form
    alice, bob = core_pair
    for field in ("ts", "deadline"):
        sent = build_request(alice.identity, "echo", {"text": "huge"})
        envelope = dict(sent.envelope)
        if field == "ts":
            envelope["ts"] = 10 ** 400
        else:
            envelope["body"] = dict(envelope["body"], deadline=10 ** 400)
        body = json.dumps({"request": to_json_form(envelope)}).encode()
        status, doc = await post(bob, body, alice.identity.id)
        assert status == 400 and doc["error"]["code"] == "malformed", (field, status, doc)
    await still_serves(alice, bob)
