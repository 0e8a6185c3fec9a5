"""The knowledge packet: signing, content address, canonical bytes, bounds, message bodies."""
from __future__ import annotations

import hashlib

import msgpack
import pytest
from knowhelp import NOW, make

from core import signed
from core.errors import (
    InvalidSignature,
    MalformedMessage,
    MessageTooLarge,
    StaleMessage,
)
from core.knowledge import protocol as proto


def reseal_raw(envelope: dict) -> bytes:
    return signed.canonical(envelope)


# -- round trips ----------------------------------------------------------------------
def test_text_packet_round_trip_and_content_address(ids):
    p = make(ids["a"], 1, title="Hello", tags=["Ops", "ops", " db "], kind="howto", text="body")
    assert p.id == hashlib.sha256(p.raw).hexdigest()
    assert p.raw == signed.canonical(p.envelope)
    assert "hops" not in p.envelope and "hops" not in p.envelope["body"]
    q = proto.open_packet(p.raw, claimed_id=p.id, now=NOW)
    assert (q.author, q.seq, q.created, q.kind, q.title) == (ids["a"].id, 1, NOW, "howto", "Hello")
    assert q.tags == ("ops", "db")  # cleaned at publish: lowercased, stripped, no repeats
    assert q.verified and q.content == b"body" and q.media_type is None


def test_file_packet_round_trip(ids):
    data = bytes(range(256)) * 100
    p = make(ids["b"], 7, file=("report.pdf", "application/pdf", data), text=None)
    q = proto.open_packet(p.raw)
    assert (q.filename, q.media_type, q.data, q.size) == ("report.pdf", "application/pdf", data, len(data))
    assert q.summary()["media_type"] == "application/pdf"


def test_a_maximal_file_fits_in_a_packet(ids):
    p = make(ids["a"], 1, file=("big.bin", "application/octet-stream", b"\0" * proto.MAX_FILE_BYTES),
             text=None)
    assert len(p.raw) <= proto.MAX_PACKET_BYTES
    assert proto.open_packet(p.raw).size == proto.MAX_FILE_BYTES


# -- forgery and tampering -------------------------------------------------------------
def test_forged_author_is_an_invalid_signature(ids):
    """Signed by b but claiming to be a's packet."""
    p = make(ids["b"], 1)
    forged = dict(p.envelope, signer=ids["a"].id)
    raw = reseal_raw(forged)
    with pytest.raises(InvalidSignature):
        proto.open_packet(raw, claimed_id=hashlib.sha256(raw).hexdigest())


def test_changed_field_after_signing_is_an_invalid_signature(ids):
    p = make(ids["a"], 1, title="original")
    body = dict(p.envelope["body"], seq=2)
    raw = reseal_raw(dict(p.envelope, body=body))
    with pytest.raises(InvalidSignature):
        proto.open_packet(raw)


def test_id_that_does_not_match_the_bytes(ids):
    p, other = make(ids["a"], 1), make(ids["a"], 2)
    with pytest.raises(MalformedMessage) as err:
        proto.decode(p.raw, claimed_id=other.id)
    assert err.value.details["reason"] == "id_mismatch"


def test_non_canonical_bytes_are_refused(ids):
    """The same envelope encoded differently would get another id: only canonical bytes are a packet."""
    p = make(ids["a"], 1)
    unsorted = msgpack.packb(dict(reversed(list(p.envelope.items()))), use_bin_type=True)
    assert unsorted != p.raw and msgpack.unpackb(unsorted) == msgpack.unpackb(p.raw)
    with pytest.raises(MalformedMessage, match="canonical"):
        proto.decode(unsorted)


@pytest.mark.parametrize("raw", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"a": 1}),
                                 msgpack.packb(msgpack.ExtType(1, b"x")), "text"])
def test_garbage_bytes_are_malformed(raw):
    with pytest.raises(MalformedMessage):
        proto.decode(raw)


def test_oversized_packet_bytes_are_refused_before_hashing():
    with pytest.raises(MessageTooLarge):
        proto.decode(b"\0" * (proto.MAX_PACKET_BYTES + 1))


# -- field bounds ---------------------------------------------------------------------
def _body(**over):
    body = {"v": 1, "seq": 1, "kind": "note", "title": "t", "tags": ["x"], "text": "hi"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


BAD_BODIES = [
    ("seq zero", _body(seq=0), MalformedMessage),
    ("seq bool", _body(seq=True), MalformedMessage),
    ("seq too big", _body(seq=proto.MAX_SEQ + 1), MalformedMessage),
    ("seq float", _body(seq=1.0), MalformedMessage),
    ("kind upper", _body(kind="Note"), MalformedMessage),
    ("kind long", _body(kind="k" * 33), MalformedMessage),
    ("title long", _body(title="t" * (proto.MAX_TITLE + 1)), MessageTooLarge),
    ("title control", _body(title="a\nb"), MalformedMessage),
    ("tags not list", _body(tags="x"), MalformedMessage),
    ("too many tags", _body(tags=[f"t{i}" for i in range(proto.MAX_TAGS + 1)]), MessageTooLarge),
    ("tag long", _body(tags=["t" * (proto.MAX_TAG + 1)]), MessageTooLarge),
    ("tag space", _body(tags=["a b"]), MalformedMessage),
    ("tag empty", _body(tags=[""]), MalformedMessage),
    ("tags repeat", _body(tags=["a", "a"]), MalformedMessage),
    ("text too long", _body(text="x" * (proto.MAX_TEXT_BYTES + 1)), MessageTooLarge),
    ("text multibyte too long", _body(text="é" * (proto.MAX_TEXT_BYTES // 2 + 1)), MessageTooLarge),
    ("no content", _body(text=...), MalformedMessage),
    ("text and file", _body(file={"name": "a", "type": "a/b", "data": b""}), MalformedMessage),
    ("unknown key", _body(extra=1), MalformedMessage),
    ("version", _body(v=2), MalformedMessage),
    ("file path", _body(text=..., file={"name": "../x", "type": "a/b", "data": b""}), MalformedMessage),
    ("file media", _body(text=..., file={"name": "x", "type": "nope", "data": b""}), MalformedMessage),
    ("file data text", _body(text=..., file={"name": "x", "type": "a/b", "data": "s"}), MalformedMessage),
    ("file extra", _body(text=..., file={"name": "x", "type": "a/b", "data": b"", "z": 1}), MalformedMessage),
    ("file too big", _body(text=..., file={"name": "x", "type": "a/b",
                                           "data": b"\0" * (proto.MAX_FILE_BYTES + 1)}), MessageTooLarge),
]


@pytest.mark.parametrize("name,body,error", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_every_field_is_bounded_and_typed(ids, name, body, error):
    """A body the author really signed is still refused when a field is out of bounds."""
    envelope = signed.seal(ids["a"], proto.KIND, body, now=NOW)
    with pytest.raises(error):
        proto.decode(signed.canonical(envelope))


def test_make_body_refuses_what_decode_refuses():
    with pytest.raises(MessageTooLarge):
        proto.make_body(1, file=("x", "a/b", b"\0" * (proto.MAX_FILE_BYTES + 1)))
    with pytest.raises(MalformedMessage):
        proto.make_body(1, text="a", file=("x", "a/b", b""))
    with pytest.raises(MalformedMessage):
        proto.make_body(1, kind="Bad Kind", text="a")


def test_wrong_envelope_kind_is_refused(ids):
    envelope = signed.seal(ids["a"], "ml.update", _body(), now=NOW)
    with pytest.raises(MalformedMessage):
        proto.decode(signed.canonical(envelope))


# -- freshness ------------------------------------------------------------------------
def test_old_packets_stay_valid_but_future_ones_are_refused(ids):
    old = make(ids["a"], 1, now=NOW - 365 * 86400)
    proto.check_fresh(proto.open_packet(old.raw), NOW)  # relayed a year later: fine
    near = make(ids["a"], 2, now=NOW + proto.FUTURE_SKEW - 1)
    proto.check_fresh(near, NOW)
    future = make(ids["a"], 3, now=NOW + proto.FUTURE_SKEW + 1)
    with pytest.raises(StaleMessage):
        proto.open_packet(future.raw, now=NOW)


def test_negative_created_time_is_malformed(ids):
    envelope = signed.seal(ids["a"], proto.KIND, _body(), now=-5.0)
    with pytest.raises(MalformedMessage, match="negative"):
        proto.decode(signed.canonical(envelope))


# -- message bodies -------------------------------------------------------------------
def test_push_item_round_trip_and_hop_limit(ids):
    p = make(ids["a"], 1)
    assert proto.parse_item(proto.push_body(p, 3)) == (p.id, p.raw, 3)
    with pytest.raises(MalformedMessage) as err:
        proto.parse_item({"id": p.id, "packet": p.raw, "hops": proto.MAX_HOPS + 1})
    assert err.value.details["reason"] == "hop_limit"
    for bad in ({"id": p.id, "packet": p.raw}, {"id": "x", "packet": p.raw, "hops": 0},
                {"id": p.id, "packet": "s", "hops": 0}, {"id": p.id, "packet": p.raw, "hops": -1},
                {"id": p.id, "packet": p.raw, "hops": True}, [1]):
        with pytest.raises(MalformedMessage):
            proto.parse_item(bad)


def test_have_body_bounds(ids):
    a = ids["a"].id
    assert proto.parse_have(proto.have_body({a: 5, ids["b"].id: 0})) == {a: 5}
    too_many = {f"{i:064x}": 1 for i in range(proto.MAX_HAVE_AUTHORS + 1)}
    with pytest.raises(MessageTooLarge):
        proto.parse_have({"have": too_many})
    for bad in ({"have": {a: -1}}, {"have": {a: 1.5}}, {"have": {"nope": 1}}, {"have": [a]},
                {"have": {a: proto.MAX_SEQ + 1}}, {}):
        with pytest.raises(MalformedMessage):
            proto.parse_have(bad)


def test_ranges_body_bounds(ids):
    a = ids["a"].id
    assert proto.parse_ranges(proto.ranges_body({a: [(1, 3), (5, 5)]})) == {a: [(1, 3), (5, 5)]}
    for bad in ({a: [[3, 1]]}, {a: [[1, 3], [2, 4]]}, {a: [[4, 5], [1, 2]]}, {a: []}, {a: [[0, 1]]},
                {a: [[1]]}, {"zz": [[1, 1]]}):
        with pytest.raises(MalformedMessage):
            proto.parse_ranges({"ranges": bad})
    with pytest.raises(MessageTooLarge):
        proto.parse_ranges({"ranges": {a: [[2 * i + 1, 2 * i + 1] for i in range(proto.MAX_RANGES + 1)]}})
    with pytest.raises(MessageTooLarge):
        proto.parse_ranges({"ranges": {f"{i:064x}": [[1, 1]] for i in range(proto.MAX_RANGE_AUTHORS + 1)}})


def test_query_body_bounds(ids):
    q = proto.parse_query({"tag": "ops", "author": ids["a"].id, "kind": "note", "limit": 5})
    assert q == proto.Query(tag="ops", author=ids["a"].id, kind="note", limit=5, offset=0)
    assert proto.parse_query(q.body()) == q
    assert proto.parse_query({}) == proto.Query()
    for bad in ({"limit": 0}, {"limit": proto.MAX_QUERY_LIMIT + 1}, {"offset": -1}, {"limit": True},
                {"tag": "a b"}, {"author": "me"}, {"kind": "X"}, {"sql": "drop"}):
        with pytest.raises(MalformedMessage):
            proto.parse_query(bad)


def test_reply_body_bounds(ids):
    p = make(ids["a"], 1)
    items, more = proto.parse_reply(proto.reply_body([proto.push_body(p, 1)], True))
    assert items == [(p.id, p.raw, 1)] and more is True
    with pytest.raises(MessageTooLarge):
        proto.parse_reply({"packets": [proto.push_body(p, 1)] * (proto.MAX_REPLY_PACKETS + 1), "more": False})
    with pytest.raises(MalformedMessage):
        proto.parse_reply({"packets": [], "more": 1})


def test_seqs_to_ranges():
    assert proto.seqs_to_ranges([5, 1, 2, 3, 7, 8, 2]) == [(1, 3), (5, 5), (7, 8)]
    assert proto.seqs_to_ranges([]) == []
    assert proto.range_count([(1, 3), (5, 5)]) == 4
