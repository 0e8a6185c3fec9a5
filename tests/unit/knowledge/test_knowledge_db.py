"""Knowledge tables on a real SQLite file: idempotent insert, equivocation, heads, serving, bounds."""
from __future__ import annotations

import pytest
from knowhelp import make

from core.errors import InvalidSignature, MalformedMessage
from core.knowledge import protocol as proto
from core.knowledge.db import KnowledgeDB
from core.knowledge.protocol import (
    AmbiguousPacket,
    Equivocation,
    StoreFull,
    UnknownPacket,
)
from core.store import Store


def put(kdb, packet, *, relay=True, peer="f" * 64, tier="core", hops=1):
    return kdb.insert(packet, hops=hops, received_from=peer, tier=tier, relay=relay)


def test_insert_is_idempotent(kdb, ids):
    p = make(ids["b"], 1)
    assert put(kdb, p) == "inserted"
    assert put(kdb, p) == "duplicate"
    assert kdb.count == 1 and kdb.has(p.id)
    assert len(kdb.list()) == 1


def test_only_verified_packets_are_stored(kdb, ids):
    p = proto.decode(make(ids["b"], 1).raw)
    with pytest.raises(ValueError):
        put(kdb, p)


def test_equivocation_is_refused_and_the_first_packet_kept(kdb, ids):
    first, second = make(ids["b"], 3, text="one"), make(ids["b"], 3, text="two")
    put(kdb, first)
    with pytest.raises(Equivocation) as err:
        put(kdb, second)
    assert err.value.details["kept"] == first.id and err.value.details["refused"] == second.id
    assert [r["id"] for r in kdb.list()] == [first.id] and kdb.count == 1


def test_have_vector_stops_at_a_gap_that_is_never_filled(kdb, ids):
    b = ids["b"]
    for seq in (1, 2, 4, 5):
        put(kdb, make(b, seq))
    assert kdb.have_vector() == {b.id: 2}
    assert kdb.count == 4  # the packets past the gap are kept
    assert kdb.held(b.id, 1, 10) == [1, 2, 4, 5]
    assert kdb.lacking(b.id, 1, 7) == [(3, 3), (6, 7)]
    put(kdb, make(b, 3))
    assert kdb.have_vector() == {b.id: 5}  # the head jumps over everything held in order


def test_heads_count_only_relayable_packets_for_what_we_advertise(kdb, ids):
    b = ids["b"]
    put(kdb, make(b, 1))
    sandbox = make(b, 2)
    put(kdb, sandbox, relay=False, tier="sandbox")
    put(kdb, make(b, 3))
    assert kdb.have_vector(relay_only=False) == {b.id: 3}
    assert kdb.have_vector(relay_only=True) == {b.id: 1}
    served = [proto.decode(i["packet"]).seq for i in kdb.serve({b.id: [(1, 3)]})[0]]
    assert served == [1, 3]  # the SANDBOX packet is held but never served
    # The same packet arriving from a CORE peer makes it relayable.
    assert put(kdb, sandbox, relay=True, tier="core") == "upgraded"
    assert kdb.have_vector(relay_only=True) == {b.id: 3}
    assert kdb.get(sandbox.id).summary["tier"] == "core"


def test_get_by_prefix_and_errors(kdb, ids):
    p = make(ids["b"], 1)
    put(kdb, p)
    assert kdb.get(p.id[:12]).id == p.id
    assert kdb.get(p.id.upper()).id == p.id
    with pytest.raises(UnknownPacket):
        kdb.get(("0" if p.id[0] != "0" else "f") * 64)
    with pytest.raises(UnknownPacket):
        kdb.get("ab")
    with pytest.raises(UnknownPacket):
        kdb.get("zzzz'; drop table know_packets; --")


def test_ambiguous_prefix(kdb, ids):
    """Force two ids sharing a 4-digit prefix by generating until they do (bounded)."""
    seen: dict[str, str] = {}
    for seq in range(1, 5000):
        p = make(ids["c"], seq)
        put(kdb, p)
        if p.id[:4] in seen:
            with pytest.raises(AmbiguousPacket):
                kdb.get(p.id[:4])
            assert kdb.get(p.id).id == p.id and kdb.get(seen[p.id[:4]]).id == seen[p.id[:4]]
            return
        seen[p.id[:4]] = p.id
    pytest.fail("no shared 4-digit prefix in 5000 ids")


def test_list_filters(kdb, ids):
    put(kdb, make(ids["b"], 1, tags=["ops", "db"], kind="howto", now=1.0))
    put(kdb, make(ids["b"], 2, tags=["ops"], now=2.0))
    put(kdb, make(ids["c"], 1, tags=["db"], now=3.0))
    assert [r["seq"] for r in kdb.list(author=ids["b"].id)] == [2, 1]  # newest first
    assert {(r["author"], r["seq"]) for r in kdb.list(tag="db")} == {(ids["b"].id, 1), (ids["c"].id, 1)}
    assert [r["kind"] for r in kdb.list(kind="howto")] == ["howto"]
    assert kdb.list(author=ids["c"].id, tag="ops") == []
    assert len(kdb.list(limit=1)) == 1 and len(kdb.list(limit=1, offset=2)) == 1
    row = kdb.list(tag="db", author=ids["c"].id)[0]
    assert row["tags"] == ["db"] and row["relay"] is True and "raw" not in row


def test_stored_bytes_are_rechecked(kdb, store, ids):
    p = make(ids["b"], 1)
    put(kdb, p)
    assert kdb.get(p.id).view()["verified"] is True
    assert kdb.get(p.id).open().id == p.id
    # Tamper with the stored bytes: one flipped byte in the signature keeps the shape.
    raw = bytearray(p.raw)
    raw[-1] ^= 1
    store.execute("UPDATE know_packets SET raw = ? WHERE id = ?", (bytes(raw), p.id))
    view = kdb.get(p.id).view()
    assert view["verified"] is False and "does not match" in view["problem"]
    with pytest.raises(MalformedMessage):
        kdb.get(p.id).open()


def test_a_row_whose_signature_fails_is_reported(kdb, store, ids):
    """Bytes that hash to their row id but carry a bad signature (a row id rewritten to match)."""
    from core import signed
    p = make(ids["b"], 1)
    put(kdb, p)
    forged = signed.canonical(dict(p.envelope, signer=ids["c"].id))
    store.execute("UPDATE know_packets SET raw = ?, id = ? WHERE id = ?", (forged, proto.packet_id(forged), p.id))
    stored = kdb.get(proto.packet_id(forged))
    with pytest.raises(InvalidSignature):
        stored.open()
    assert stored.view()["verified"] is False


def test_missing_compares_have_vectors(kdb, ids):
    b, c, d = ids["b"].id, ids["c"].id, ids["d"].id
    for seq in (1, 2, 5):
        put(kdb, make(ids["b"], seq))
    for seq in (1, 2, 3):
        put(kdb, make(ids["c"], seq))
    m = kdb.missing({b: 6, c: 1, d: 2})
    # We hold b#5 already: ask only for 3-4 and 6; c: we are ahead; d: all of it.
    assert m.want == {b: [(3, 4), (6, 6)], d: [(1, 2)]}
    assert m.offer == {c: [(2, 3)]}


def test_serve_is_bounded_by_count_bytes_and_hops(kdb, ids):
    b = ids["b"]
    for seq in range(1, 11):
        put(kdb, make(b, seq), hops=1)
    put(kdb, make(b, 11), hops=proto.MAX_HOPS)  # at the limit: not served onward
    items, more = kdb.serve({b.id: [(1, 11)]}, max_count=4)
    assert [proto.decode(i["packet"]).seq for i in items] == [1, 2, 3, 4] and more
    assert all(i["hops"] == 2 for i in items)
    items, more = kdb.serve({b.id: [(5, 11)]})
    assert [proto.decode(i["packet"]).seq for i in items] == [5, 6, 7, 8, 9, 10] and not more
    size = len(items[0]["packet"])
    items, more = kdb.serve({b.id: [(1, 10)]}, max_bytes=3 * size)
    assert len(items) == 3 and more
    items, more = kdb.serve({b.id: [(1, 10)]}, max_bytes=1)
    assert len(items) == 1 and more  # one packet always fits


def test_query_serves_relayable_packets_only(kdb, ids):
    put(kdb, make(ids["b"], 1, tags=["ops"]))
    put(kdb, make(ids["c"], 1, tags=["ops"]), relay=False, tier="sandbox")
    items, more = kdb.query(proto.Query(tag="ops"))
    assert [proto.decode(i["packet"]).author for i in items] == [ids["b"].id] and not more
    for seq in range(2, 6):
        put(kdb, make(ids["b"], seq, tags=["ops"]))
    items, more = kdb.query(proto.Query(tag="ops", limit=3))
    assert len(items) == 3 and more


def test_store_bounds(store, ids):
    kdb = KnowledgeDB(store, max_packets=3)
    packets = [make(ids["b"], seq) for seq in (1, 2, 3)]
    for p in packets:
        put(kdb, p)
    with pytest.raises(StoreFull):
        put(kdb, make(ids["b"], 4))
    assert kdb.count == 3
    assert put(kdb, packets[2]) == "duplicate"  # a duplicate is still recognised when full
    with pytest.raises(ValueError):
        KnowledgeDB(store, max_bytes=1)


def test_store_byte_bound(store, ids):
    kdb = KnowledgeDB(store, max_bytes=proto.MAX_PACKET_BYTES)
    put(kdb, make(ids["b"], 1, file=("a", "a/b", b"\0" * (proto.MAX_FILE_BYTES - 1000)), text=None))
    with pytest.raises(StoreFull):
        put(kdb, make(ids["b"], 2, file=("a", "a/b", b"\0" * 70_000), text=None))


def test_everything_survives_a_reopen(tmp_path, ids):
    path = tmp_path / "k.db"
    with Store(path) as store:
        kdb = KnowledgeDB(store)
        for seq in (1, 2, 4):
            put(kdb, make(ids["b"], seq, tags=["x"]))
        kdb.save_counters({"*": {"received": 3, "rejected.malformed": 1}, ids["b"].id: {"received": 3}})
    with Store(path) as store:
        kdb = KnowledgeDB(store)
        assert kdb.count == 3 and kdb.bytes > 0
        assert kdb.have_vector() == {ids["b"].id: 2}
        assert kdb.next_seq(ids["b"].id) == 5
        assert kdb.load_counters()["*"] == {"received": 3, "rejected.malformed": 1}
        assert store.schema_version("knowledge") == 1
