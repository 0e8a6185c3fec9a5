"""The intake pipeline and answers, with real SQLite stores and signed packets from several identities."""
from __future__ import annotations

import pytest
from knowhelp import NOW, FakeClock, make

from core import signed
from core.errors import MalformedMessage, RefusedByPolicy
from core.knowledge import protocol as proto
from core.knowledge.db import KnowledgeDB
from core.knowledge.engine import KnowledgeEngine
from core.knowledge.gossip import Inflight, Pull
from core.peers import Tier

CORE, SANDBOX, EXTERNAL, UNKNOWN = Tier.CORE, Tier.SANDBOX, Tier.EXTERNAL, Tier.UNKNOWN


@pytest.fixture
def mono():
    return FakeClock()


@pytest.fixture
def engine(kdb, ids, mono):
    return KnowledgeEngine(kdb, ids["a"].id, clock=lambda: NOW, monotonic=mono,
                           author_rate=1, author_burst=3)


def push(packet, hops=1):
    return proto.push_body(packet, hops)


def rejected(engine, peer):
    return engine.counters.view()["peers"][peer]["rejected"]


# -- accept / refuse by tier ------------------------------------------------------------
# tier, banned -> status, forwarded to our other CORE peers, served onward to a query
INTAKE_TABLE = [
    (CORE, False, "accepted", True, True),
    (SANDBOX, False, "accepted", False, False),
    (EXTERNAL, False, "rejected", False, False),
    (UNKNOWN, False, "rejected", False, False),
    (CORE, True, "rejected", False, False),
    (SANDBOX, True, "rejected", False, False),
]


@pytest.mark.parametrize("tier,banned,status,forwarded,served", INTAKE_TABLE)
def test_intake_by_tier(engine, ids, tier, banned, status, forwarded, served):
    sender, other = ids["b"].id, ids["d"].id
    packet = make(ids["c"], 1)
    peers = [(sender, tier, banned), (other, CORE, False), (ids["e"].id, SANDBOX, False)]
    verdict = engine.admit(sender, tier, banned, push(packet), peers=peers)
    assert verdict.status == status
    if status == "rejected":
        assert verdict.reason == "refused_by_policy" and not verdict.peer_fault
        assert rejected(engine, sender) == {"refused_by_policy": 1}
        assert not engine.db.has(packet.id)
    assert (verdict.forward.lazy == (other,)) is forwarded
    assert verdict.forward.eager == ()
    items = engine.answer_query(other, CORE, False, {})["packets"]
    assert (packet.id in [i["id"] for i in items]) is served


def test_refused_before_anything_is_parsed(engine, ids):
    verdict = engine.admit(ids["b"].id, EXTERNAL, False, {"not": "a packet"})
    assert verdict.reason == "refused_by_policy"


@pytest.mark.parametrize("tier,banned,allowed", [(CORE, False, True), (SANDBOX, False, True),
                                                 (EXTERNAL, False, True), (UNKNOWN, False, False),
                                                 (CORE, True, False)])
def test_who_may_pull_and_query(engine, ids, tier, banned, allowed):
    engine.publish(ids["a"], text="ours", tags=["ops"])
    calls = [lambda: engine.answer_query(ids["b"].id, tier, banned, {"tag": "ops"}),
             lambda: engine.answer_want(ids["b"].id, tier, banned, proto.ranges_body({ids["a"].id: [(1, 1)]})),
             lambda: engine.answer_have(ids["b"].id, tier, banned, proto.have_body({}))]
    for call in calls:
        if allowed:
            reply = call()
            assert reply.get("have") == {ids["a"].id: 1} or len(reply["packets"]) == 1
        else:
            with pytest.raises(RefusedByPolicy):
                call()


# -- dedupe ---------------------------------------------------------------------------
def test_replayed_packet_is_a_duplicate_not_accepted_twice(engine, ids, mono):
    packet = make(ids["c"], 1)
    peer = ids["b"].id
    assert engine.admit(peer, CORE, False, push(packet)).status == "accepted"
    assert engine.admit(peer, CORE, False, push(packet)).status == "duplicate"  # seen-set
    mono.advance(3600)  # the seen-set forgot it: the store still knows
    again = engine.admit(ids["d"].id, CORE, False, push(packet, hops=3))
    assert again.status == "duplicate" and again.forward.lazy == ()
    total = engine.counters.view()["total"]
    assert (total["received"], total["accepted"], total["duplicates"]) == (3, 1, 2)
    assert engine.db.count == 1


def test_a_junk_packet_claiming_a_seen_id_does_not_hide_the_real_one(engine, ids):
    real = make(ids["c"], 1)
    junk = {"id": real.id, "packet": b"junk", "hops": 1}
    assert engine.admit(ids["b"].id, CORE, False, junk).reason == "id_mismatch"
    assert engine.admit(ids["b"].id, CORE, False, push(real)).status == "accepted"


# -- bad packets ----------------------------------------------------------------------
def test_forged_author(engine, ids):
    genuine = make(ids["d"], 1)
    raw = signed.canonical(dict(genuine.envelope, signer=ids["c"].id))
    verdict = engine.admit(ids["b"].id, CORE, False, {"id": proto.packet_id(raw), "packet": raw, "hops": 1})
    assert verdict.reason == "invalid_signature" and verdict.peer_fault
    assert engine.db.count == 0


def test_id_that_does_not_match_its_bytes(engine, ids):
    p, q = make(ids["c"], 1), make(ids["c"], 2)
    verdict = engine.admit(ids["b"].id, CORE, False, {"id": q.id, "packet": p.raw, "hops": 1})
    assert verdict.reason == "id_mismatch" and verdict.peer_fault
    assert not engine.db.has(p.id) and not engine.db.has(q.id)


def test_oversized_packet(engine, ids):
    body = {"id": "0" * 64, "packet": b"\0" * (proto.MAX_PACKET_BYTES + 1), "hops": 1}
    assert engine.admit(ids["b"].id, CORE, False, body).reason == "too_large"
    big_text = "x" * (proto.MAX_TEXT_BYTES + 1)
    envelope = signed.seal(ids["c"], proto.KIND, {"v": 1, "seq": 1, "kind": "note", "title": "",
                                                  "tags": [], "text": big_text}, now=NOW)
    raw = signed.canonical(envelope)
    verdict = engine.admit(ids["b"].id, CORE, False, {"id": proto.packet_id(raw), "packet": raw, "hops": 1})
    assert verdict.reason == "too_large"


def test_hop_limit(engine, ids):
    packet = make(ids["c"], 1)
    too_far = {"id": packet.id, "packet": packet.raw, "hops": proto.MAX_HOPS + 1}
    verdict = engine.admit(ids["b"].id, CORE, False, too_far)
    assert verdict.reason == "hop_limit"
    at_limit = engine.admit(ids["b"].id, CORE, False, push(packet, hops=proto.MAX_HOPS),
                            peers=[(ids["d"].id, CORE, False)])
    assert at_limit.status == "accepted" and at_limit.forward.lazy == ()  # kept, not forwarded
    assert engine.db.serve({ids["c"].id: [(1, 1)]})[0] == []  # nor served onward


def test_packet_from_the_future(engine, ids):
    packet = make(ids["c"], 1, now=NOW + 3600)
    verdict = engine.admit(ids["b"].id, CORE, False, push(packet))
    assert verdict.reason == "from_future" and not verdict.peer_fault


def test_equivocation(engine, ids):
    first, second = make(ids["c"], 4, text="one"), make(ids["c"], 4, text="two")
    assert engine.admit(ids["b"].id, CORE, False, push(first)).status == "accepted"
    verdict = engine.admit(ids["d"].id, CORE, False, push(second))
    assert verdict.reason == "equivocation" and not verdict.peer_fault  # the author's fault
    assert engine.db.get(first.id).id == first.id and not engine.db.has(second.id)


@pytest.mark.parametrize("body", [None, [], {"id": "0" * 64}, {"id": 1, "packet": b"", "hops": 0}])
def test_malformed_bodies_never_raise(engine, ids, body):
    verdict = engine.admit(ids["b"].id, CORE, False, body)
    assert verdict.status == "rejected" and verdict.reason == "malformed"


# -- limits ---------------------------------------------------------------------------
def test_per_author_rate_limit(engine, ids, mono):
    packets = [make(ids["c"], s) for s in range(1, 6)]
    statuses = [engine.admit(ids["b"].id, CORE, False, push(p)) for p in packets]
    assert [v.status for v in statuses] == ["accepted"] * 3 + ["rejected"] * 2
    assert {v.reason for v in statuses[3:]} == {"rate_limited"}
    assert engine.admit(ids["b"].id, CORE, False, push(make(ids["d"], 1))).status == "accepted"  # other author
    mono.advance(1)
    # A refused packet is not remembered as seen: it is accepted once the bucket refills.
    assert engine.admit(ids["b"].id, CORE, False, push(packets[3])).status == "accepted"


def test_pulled_packets_are_not_rate_limited_but_must_have_been_asked(engine, ids):
    c = ids["c"]
    packets = [make(c, s) for s in range(1, 8)]
    pull = Pull(peer=ids["b"].id, want={c.id: [(1, 6)]}, inflight=engine.inflight, batch=10)
    pull.next_batch()
    reply = proto.reply_body([push(p) for p in packets], False)
    verdicts, _ = engine.admit_reply(ids["b"].id, CORE, False, reply, pull)
    assert [v.status for v in verdicts] == ["accepted"] * 6 + ["rejected"]
    assert verdicts[-1].reason == "unsolicited" and verdicts[-1].peer_fault
    assert len(engine.inflight) == 0


def test_malformed_reply_is_one_rejection(engine, ids):
    pull = Pull(peer=ids["b"].id, want={ids["c"].id: [(1, 1)]}, inflight=engine.inflight)
    pull.next_batch()
    verdicts, more = engine.admit_reply(ids["b"].id, CORE, False, {"packets": "x"}, pull)
    assert [v.reason for v in verdicts] == ["malformed"] and not more
    assert len(engine.inflight) == 0 and pull.next_batch() == {}


def test_per_peer_byte_budget(kdb, ids, mono):
    engine = KnowledgeEngine(kdb, ids["a"].id, clock=lambda: NOW, monotonic=mono,
                             peer_bytes_rate=1, peer_bytes_burst=proto.MAX_PACKET_BYTES)
    big = [make(ids["c"], s, file=("f", "a/b", b"\0" * (proto.MAX_FILE_BYTES * 2 // 3)), text=None)
           for s in (1, 2, 3)]
    statuses = [engine.admit(ids["b"].id, CORE, False, push(p)).status for p in big]
    assert statuses == ["accepted", "rejected", "rejected"]
    assert rejected(engine, ids["b"].id) == {"peer_over_budget": 2}
    assert engine.admit(ids["d"].id, CORE, False, push(big[1])).status == "accepted"  # another peer


# -- publishing and status ---------------------------------------------------------------
def test_publish_numbers_our_packets_and_pushes_them_eagerly(engine, ids):
    peers = [(ids["b"].id, CORE, False), (ids["c"].id, SANDBOX, False)]
    first, fwd = engine.publish(ids["a"], peers=peers, text="one", title="t")
    second, _ = engine.publish(ids["a"], text="two")
    assert (first.seq, second.seq) == (1, 2) and fwd.eager == (ids["b"].id,)
    assert engine.have() == {"have": {ids["a"].id: 2}}
    assert engine.db.get(first.id).summary["tier"] == "self"
    with pytest.raises(ValueError):
        engine.publish(ids["b"], text="not ours")


def test_status_and_counter_persistence(engine, kdb, ids, mono):
    engine.admit(ids["b"].id, CORE, False, push(make(ids["c"], 1)))
    engine.admit(ids["b"].id, EXTERNAL, False, push(make(ids["c"], 2)))
    engine.sent(ids["b"].id, 2)
    status = engine.status()
    assert status["packets"] == 1 and status["authors"] == 1
    assert status["counters"]["total"] == {"sent": 2, "received": 2, "accepted": 1, "duplicates": 0,
                                           "rejected": {"refused_by_policy": 1}}
    engine.save()
    again = KnowledgeEngine(kdb, ids["a"].id, clock=lambda: NOW, monotonic=mono)
    assert again.status()["counters"] == status["counters"]


def test_ihave_asks_only_for_what_we_lack(engine, ids):
    c = ids["c"].id
    engine.admit(ids["b"].id, CORE, False, push(make(ids["c"], 2)))
    pull = engine.on_ihave(ids["d"].id, CORE, False, proto.ranges_body({c: [(1, 3)]}))
    assert pull.next_batch() == {c: [(1, 1), (3, 3)]}
    assert engine.on_ihave(ids["d"].id, EXTERNAL, False, proto.ranges_body({c: [(1, 3)]})) is None
    with pytest.raises(MalformedMessage):
        engine.on_ihave(ids["d"].id, CORE, False, {"ranges": {c: [[3, 1]]}})


def test_peer_gone_frees_its_pulls(engine, ids):
    pull = Pull(peer=ids["b"].id, want={ids["c"].id: [(1, 3)]}, inflight=engine.inflight)
    pull.next_batch()
    assert len(engine.inflight) == 3
    engine.peer_gone(ids["b"].id)
    assert len(engine.inflight) == 0
    assert isinstance(engine.inflight, Inflight)


def test_engine_works_on_a_reopened_store(tmp_path, ids):
    from core.store import Store
    with Store(tmp_path / "x.db") as store:
        KnowledgeEngine(KnowledgeDB(store), ids["a"].id).publish(ids["a"], text="x")
    with Store(tmp_path / "x.db") as store:
        engine = KnowledgeEngine(KnowledgeDB(store), ids["a"].id)
        assert engine.publish(ids["a"], text="y")[0].seq == 2


def test_a_sandbox_packet_seen_again_from_core_becomes_relayable(engine, ids):
    """The seen-set must not hide the second arrival: it is what allows the packet onward."""
    packet = make(ids["c"], 1)
    assert engine.admit(ids["e"].id, SANDBOX, False, push(packet)).status == "accepted"
    assert engine.answer_query(ids["d"].id, EXTERNAL, False, {})["packets"] == []
    assert engine.admit(ids["b"].id, CORE, False, push(packet)).status == "duplicate"
    assert [i["id"] for i in engine.answer_query(ids["d"].id, EXTERNAL, False, {})["packets"]] == [packet.id]
    assert engine.db.get(packet.id).summary["received_from"] == ids["b"].id
