"""Every task type delegated between two real nodes, over the peer link and over POST /tasks,
each answered with a signed proof the requester verifies, records and can verify again."""
from __future__ import annotations

import aiohttp
import pytest

from core.delegation.http import parse_answer, request_body
from core.delegation.proofs import verify_proof
from core.delegation.protocol import HTTP_PATH, SIGNER_HEADER
from core.delegation.request import build_request

from ..conftest import address
from .conftest import mlp_weights


def cases():
    return [("echo", {"text": "bonjour ✓"}, lambda r: r == {"text": "bonjour ✓", "length": 9}),
            ("dataset.digest", {"dataset": "digits"}, lambda r: r["rows"] == 1797 and len(r["merkle_root"]) == 64),
            ("dataset.stats", {"dataset": "synthetic", "column": 0, "bins": 4},
             lambda r: r["count"] == 2000 and sum(r["histogram"]) == 2000),
            ("model.evaluate", {"dataset": "digits", "hidden": 16, "weights": None},
             lambda r: r["rows"] == 360 and 0 <= r["accuracy"] <= 1 and r["loss"] > 0),
            ("bench.probe", {"ms": 20, "n": 16}, lambda r: r["n"] == 16 and r["iterations"] >= 1)]


@pytest.mark.parametrize("via", ["link", "http"])
@pytest.mark.parametrize("kind,args,check", cases(), ids=[c[0] for c in cases()])
async def test_every_task_type_runs_with_a_verified_proof(core_pair, via, kind, args, check):
    alice, bob = core_pair
    if "weights" in args:
        args = {**args, "weights": mlp_weights(16)}
    view = await alice.service("delegation").run("bob", kind, args, timeout=120, http=via == "http")
    assert view["state"] == "done" and view["verified"] is True and view["via"] == via
    assert check(view["result"]), view["result"]
    statement = view["proof"]["statement"]
    assert statement["predicate"]["executor"] == bob.identity.id
    assert statement["predicate"]["requester"] == alice.identity.id
    assert statement["predicate"]["type"] == kind
    # What alice keeps verifies again, and bob keeps its side with the same proof.
    shown = alice.service("delegation").show(view["task"][:10])
    assert shown["verification"]["verified"] is True and shown["verification"]["reason"] is None
    served = bob.service("delegation").show(view["task"])
    assert served["role"] == "served" and served["state"] == "done" and served["via"] == via
    assert served["proof"]["dsse"] == view["proof"]["dsse"]
    assert served["peer"] == alice.identity.id and served["verification"]["verified"] is True
    assert [t["task"] for t in alice.service("delegation").list("sent")] == [view["task"]]


async def test_a_simple_http_client_gets_a_proof_it_can_verify(core_pair):
    """The HTTP form as a client outside Covey's service would use it: JSON in, JSON out."""
    alice, bob = core_pair
    sent = build_request(alice.identity, "echo", {"text": "over plain HTTP"})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{address(bob)}{HTTP_PATH}", data=request_body(sent),
                                headers={SIGNER_HEADER: alice.identity.id}) as resp:
            assert resp.status == 200 and resp.content_type == "application/json"
            doc = await resp.json()
            proof, result = parse_answer(resp.status, await resp.read())
    assert doc["task"] == sent.task and doc["executor"] == bob.identity.id
    assert set(doc["result"]) == {"$base64"}
    statement = verify_proof(proof, executor=bob.identity.id, request_digest=sent.digest, result_bytes=result)
    assert statement["predicate"]["exit"]["status"] == "ok"
    assert result == b'{"length":15,"text":"over plain HTTP"}'


async def test_health_is_health_json_and_keeps_its_old_fields(core_pair):
    alice, bob = core_pair
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address(bob)}/health") as resp:
            assert resp.status == 200 and resp.content_type == "application/health+json"
            doc = await resp.json(content_type=None)
    assert doc["status"] == "pass" and doc["version"] == "1" and doc["releaseId"]
    assert doc["ok"] is True and doc["id"] == bob.identity.id and doc["peers"] == 1
    assert doc["serviceId"] == bob.identity.id
    executor = doc["checks"]["delegation:executor"][0]
    assert executor["status"] == "pass" and executor["observedUnit"] == "tasks"
    assert doc["checks"]["transport:peers"][0]["observedValue"] == 1


async def test_health_warns_while_the_executor_queue_is_full(core_pair):
    alice, bob = core_pair
    executor = bob.service("delegation").executor
    executor._outstanding["x" * 64] = executor.max_running + executor.max_queued   # as if full
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address(bob)}/health") as resp:
            doc = await resp.json(content_type=None)
    assert resp.status == 200 and doc["status"] == "warn"
    assert doc["checks"]["delegation:executor"][0]["output"] == "executor busy: its queue is full"


async def test_unknown_paths_and_methods_on_the_node_port(core_pair):
    alice, bob = core_pair
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address(bob)}{HTTP_PATH}") as resp:
            assert resp.status == 405 and "GET is not served" in (await resp.json())["error"]["message"]
        async with session.post(f"http://{address(bob)}/nothing") as resp:
            assert resp.status == 404


async def test_the_executor_offers_the_datasets_of_its_settings(make_node):
    alice = await make_node("alice")
    bob = await make_node("bob", task_datasets={"hand": "digits"})
    await alice.add_peer(address(bob), name="bob")
    from ..conftest import wait_until
    await wait_until(lambda: alice.identity.id in bob.connections)
    bob.trust(alice.identity.id, "core")
    view = await alice.service("delegation").run("bob", "dataset.digest", {"dataset": "hand"})
    assert view["verified"] and view["result"]["rows"] == 1797
    from core.errors import BadRequest
    with pytest.raises(BadRequest, match="unknown dataset 'digits': this executor offers hand"):
        await alice.service("delegation").run("bob", "dataset.digest", {"dataset": "digits"})
    await bob.update_settings(task_datasets={"hand": "digits", "syn": "synthetic"})
    assert bob.service("delegation").executor.datasets == {"hand": "digits", "syn": "synthetic"}
    assert (await alice.service("delegation").run("bob", "dataset.digest", {"dataset": "syn"}))["verified"]


async def test_records_written_behind_the_answer_are_flushed_on_stop(core_pair):
    """A task's rows are queued while its answer goes out; stopping at once still writes both
    sides, finished and verified (and what comes after the stop is written at once)."""
    import sqlite3

    alice, bob = core_pair

    def on_disk(node) -> list[tuple]:
        with sqlite3.connect(node.store.path) as conn:
            return conn.execute("SELECT role, state, verified FROM tasks").fetchall()

    view = await alice.service("delegation").run("bob", "echo", {"text": "keep me"})
    assert on_disk(alice) == []            # queued behind the answer: nothing written yet
    await alice.service("delegation").stop()
    await bob.service("delegation").stop()
    assert on_disk(alice) == [("sent", "done", 1)] and on_disk(bob) == [("served", "done", 1)]
    assert alice.service("delegation").show(view["task"])["verification"]["verified"] is True


async def test_batched_records_of_many_tasks_are_all_written_when_the_nodes_stop(core_pair, monkeypatch):
    """Rows wait to be written together (one commit for every task queued meanwhile); a clean
    stop of either node (the whole node, not only the service) writes every one of them, both
    sides, over the link and over HTTP, with the requester's reputation change for each proof."""
    import sqlite3

    from core.delegation import recorder

    monkeypatch.setattr(recorder, "FLUSH_DELAY", 3600.0)   # nothing is written before the stop
    alice, bob = core_pair

    def on_disk(node) -> list[tuple]:
        with sqlite3.connect(node.store.path) as conn:
            return sorted(conn.execute("SELECT id, role, state, verified, via FROM tasks").fetchall())

    before = alice.peers.get(bob.identity.id).reputation
    tasks = alice.service("delegation")
    sent = [(await tasks.run("bob", "echo", {"text": f"t{i}"}, http=i == 3))["task"] for i in range(4)]
    assert on_disk(alice) == [] and on_disk(bob) == []
    await alice.stop()
    await bob.stop()
    vias = ["link", "link", "link", "http"]
    assert on_disk(alice) == sorted((t, "sent", "done", 1, v) for t, v in zip(sent, vias, strict=True))
    assert on_disk(bob) == sorted((t, "served", "done", 1, v) for t, v in zip(sent, vias, strict=True))
    with sqlite3.connect(alice.store.path) as conn:
        (reputation,) = conn.execute("SELECT reputation FROM peers WHERE id = ?", (bob.identity.id,)).fetchone()
    assert reputation == min(1.0, round(before + 4 * 0.01, 6))


async def test_a_task_to_a_peer_that_is_not_connected_is_recorded_as_refused(make_node):
    """The send fails before the request's row is queued (it is queued while the request
    travels): the row still ends refused, never left as sent."""
    from core.errors import PeerUnreachable
    from core.identity import Identity

    alice = await make_node("alice")
    absent = Identity.generate("absent").id
    alice.peers.add_or_update(absent, name="absent", kept=True)
    with pytest.raises(PeerUnreachable):
        await alice.service("delegation").run("absent", "echo", {"text": "x"})
    rows = alice.service("delegation").list()
    assert [(r["peer"], r["state"]) for r in rows] == [(absent, "refused")]
    assert "unreachable" in rows[0]["error"]
