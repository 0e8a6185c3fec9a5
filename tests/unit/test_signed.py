"""Signed envelopes: canonical encoding, seal/open, clock skew, replay, bounded memory."""
from __future__ import annotations

import copy

import msgpack
import pytest

from core.errors import InvalidSignature, MalformedMessage, ReplayDetected, StaleMessage
from core.identity import Identity
from core.signed import (DEFAULT_FUTURE_SKEW, DEFAULT_SKEW, Verifier, _signed_bytes, canonical, envelope_bytes, seal,
                         seal_signed, verify_only)

NOW = 1_800_000_000.0


@pytest.fixture
def alice() -> Identity:
    return Identity.generate("alice")


# -- canonical encoding ------------------------------------------------------------
def test_canonical_does_not_depend_on_map_order():
    a = {"b": 1, "a": {"y": [1, 2], "x": b"\x00"}}
    b = {"a": {"x": b"\x00", "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b)
    assert msgpack.unpackb(canonical(a), raw=False) == a


def test_canonical_keeps_types_apart():
    assert canonical(1) != canonical(1.0) != canonical(True)
    assert canonical("ab") != canonical(b"ab")
    assert canonical(1.5)[:1] == b"\xcb"  # always float64, never a shorter float32 form


def _nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [{1: "int key"}, {"s": {1, 2}}, object(), float("nan"),
                                   2 ** 64, {"deep": _nested(100)}],
                         ids=["int-key", "set", "object", "nan", "huge-int", "too-deep"])
def test_canonical_refuses_what_it_cannot_encode_one_way(value):
    with pytest.raises(MalformedMessage):
        canonical(value)


# -- seal and open ----------------------------------------------------------------
def test_seal_then_open_returns_signer_and_body(alice):
    body = {"text": "hello", "n": 3, "blob": b"\x01\x02"}
    env = seal(alice, "knowledge", body, now=NOW)
    assert set(env) == {"kind", "signer", "nonce", "ts", "body", "sig"}
    assert len(env["nonce"]) == 16 and len(env["sig"]) == 64 and env["ts"] == NOW
    signer, opened = Verifier().open(env, "knowledge", now=NOW + 1)
    assert signer == alice.id and opened == body


def test_envelope_survives_a_msgpack_round_trip(alice):
    env = seal(alice, "task", {"args": [1, 2.5, None, True], "who": "bob"}, now=NOW)
    wire = msgpack.unpackb(msgpack.packb(env, use_bin_type=True), raw=False)
    assert Verifier().open(wire, "task", now=NOW) == (alice.id, env["body"])


def test_bad_signature_is_rejected(alice):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    env["sig"] = bytes(64)
    with pytest.raises(InvalidSignature):
        Verifier().open(env, "knowledge", now=NOW)


def test_tampered_body_is_rejected(alice):
    env = seal(alice, "knowledge", {"amount": 10}, now=NOW)
    env["body"]["amount"] = 1000
    with pytest.raises(InvalidSignature):
        Verifier().open(env, "knowledge", now=NOW)


def test_claimed_signer_must_be_the_real_signer(alice):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    env["signer"] = Identity.generate("mallory").id
    with pytest.raises(InvalidSignature):
        Verifier().open(env, "knowledge", now=NOW)


def test_tampered_timestamp_is_rejected(alice):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW - 1000)
    env["ts"] = NOW  # try to refresh an old object
    with pytest.raises(InvalidSignature):
        Verifier().open(env, "knowledge", now=NOW)


def test_signature_for_one_kind_is_not_valid_for_another(alice):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    relabelled = dict(env, kind="task")
    with pytest.raises(InvalidSignature):
        Verifier().open(relabelled, "task", now=NOW)


def test_opening_as_the_wrong_kind_is_malformed(alice):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    with pytest.raises(MalformedMessage, match="task"):
        Verifier().open(env, "task", now=NOW)


@pytest.mark.parametrize("delta", [-(DEFAULT_SKEW + 1), DEFAULT_SKEW + 1], ids=["stale", "future"])
def test_timestamp_outside_the_skew_is_rejected(alice, delta):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW + delta)
    with pytest.raises(StaleMessage, match="clock"):
        Verifier().open(env, "knowledge", now=NOW)


@pytest.mark.parametrize("delta", [-DEFAULT_SKEW, DEFAULT_FUTURE_SKEW])
def test_timestamp_at_the_edge_of_the_skew_is_accepted(alice, delta):
    env = seal(alice, "knowledge", {"x": 1}, now=NOW + delta)
    assert Verifier().open(env, "knowledge", now=NOW)[0] == alice.id


def test_replay_is_rejected(alice):
    verifier = Verifier()
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    verifier.open(env, "knowledge", now=NOW)
    with pytest.raises(ReplayDetected):
        verifier.open(copy.deepcopy(env), "knowledge", now=NOW + 5)


def test_same_nonce_from_another_signer_is_not_a_replay(alice):
    bob = Identity.generate("bob")
    verifier = Verifier()
    first = seal(alice, "knowledge", {}, now=NOW)
    second = seal(bob, "knowledge", {}, now=NOW)
    # Re-sign bob's envelope with alice's nonce: a different (signer, nonce) pair.
    second["nonce"] = first["nonce"]
    second["sig"] = bob.sign(_signed_bytes("knowledge", bob.id, first["nonce"], NOW, {}))
    verifier.open(first, "knowledge", now=NOW)
    assert verifier.open(second, "knowledge", now=NOW)[0] == bob.id


def test_forged_copy_does_not_burn_the_real_nonce(alice):
    verifier = Verifier()
    env = seal(alice, "knowledge", {"x": 1}, now=NOW)
    forged = dict(env, sig=bytes(64))
    with pytest.raises(InvalidSignature):
        verifier.open(forged, "knowledge", now=NOW)
    assert verifier.open(env, "knowledge", now=NOW)[0] == alice.id


def test_nonces_are_forgotten_once_their_timestamp_leaves_the_window(alice):
    verifier = Verifier(skew=10)
    for i in range(5):
        verifier.open(seal(alice, "k", {"i": i}, now=NOW), "k", now=NOW)
    assert len(verifier) == 5
    verifier.open(seal(alice, "k", {}, now=NOW + 20), "k", now=NOW + 20)
    assert len(verifier) == 1


def test_a_clock_stepping_back_cannot_revive_a_forgotten_nonce(alice):
    verifier = Verifier(skew=10)
    env = seal(alice, "k", {}, now=NOW)
    verifier.open(env, "k", now=NOW)
    verifier.open(seal(alice, "k", {}, now=NOW + 15), "k", now=NOW + 15)  # forgets env's nonce
    with pytest.raises((ReplayDetected, StaleMessage)):
        verifier.open(env, "k", now=NOW + 5)  # clock went back: env is inside the skew again


def test_full_verifier_forgets_the_oldest_and_refuses_older_messages(alice):
    verifier = Verifier(max_entries=3)
    envs = [seal(alice, "k", {"i": i}, now=NOW + i) for i in range(4)]
    for env in envs:
        verifier.open(env, "k", now=NOW + 4)
    assert len(verifier) == 3
    with pytest.raises(StaleMessage, match="horizon"):
        verifier.open(envs[0], "k", now=NOW + 4)  # forgotten, yet not accepted again
    with pytest.raises(ReplayDetected):
        verifier.open(envs[3], "k", now=NOW + 4)
    fresh = seal(alice, "k", {"i": 9}, now=NOW + 5)
    assert verifier.open(fresh, "k", now=NOW + 5)[0] == alice.id


def _valid(alice):
    return seal(alice, "k", {"x": 1}, now=NOW)


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("nonce"),
    lambda e: e.update(extra=1),
    lambda e: e.update(nonce=b"short"),
    lambda e: e.update(signer="not-an-id"),
    lambda e: e.update(ts="yesterday"),
    lambda e: e.update(ts=float("inf")),
    lambda e: e.update(body=[1, 2]),
    lambda e: e.update(sig="sig"),
], ids=["missing-nonce", "extra-field", "short-nonce", "bad-signer", "text-ts", "infinite-ts",
        "list-body", "text-sig"])
def test_malformed_envelopes_are_rejected_before_any_crypto(alice, mutate):
    env = _valid(alice)
    mutate(env)
    with pytest.raises(MalformedMessage):
        Verifier().open(env, "k", now=NOW)


def test_non_map_envelope_is_malformed():
    with pytest.raises(MalformedMessage):
        Verifier().open([1, 2, 3], "k", now=NOW)


def test_verify_only_accepts_an_old_stored_object_and_rejects_a_tampered_one(alice):
    env = seal(alice, "checkpoint", {"round": 3}, now=NOW - 10 * 86400)
    assert verify_only(env, "checkpoint") == (alice.id, {"round": 3})
    assert verify_only(env, "checkpoint") == (alice.id, {"round": 3})  # no replay memory
    env["body"]["round"] = 4
    with pytest.raises(InvalidSignature):
        verify_only(env, "checkpoint")


# -- the envelope's canonical bytes from the signed bytes ---------------------------------
BODIES = [{}, {"text": "x" * 100}, {"b": [1, 2.5, None, True], "a": {"y": b"\x00" * 300, "x": "é" * 40}},
          {"n": -2 ** 63, "m": 2 ** 64 - 1, "f": float("inf"), "t": (1, "two")}]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("ts", [NOW + 0.123456, NOW, 7, int(NOW) - 5])   # floats, and ints a peer may send
def test_envelope_bytes_equal_the_canonical_envelope(alice, body, ts):
    """The digest callers splice the signature into the signed bytes instead of encoding the
    whole envelope again: the bytes are exactly canonical(envelope), sealed or opened."""
    envelope, signed = seal_signed(alice, "thing", body, now=NOW)
    assert envelope_bytes(envelope, signed) == canonical(envelope)
    envelope = dict(envelope, ts=ts)
    envelope["sig"] = alice.sign(_signed_bytes("thing", alice.id, envelope["nonce"], ts, body))
    signer, opened, signed = Verifier(skew=10 ** 10).open_signed(envelope, "thing", now=NOW)
    assert (signer, opened) == (alice.id, body)
    assert envelope_bytes(envelope, signed) == canonical(envelope)
    assert Verifier(skew=10 ** 10).admit_signed(copy.deepcopy(envelope), "thing", alice.id, None,
                                                now=NOW)[2] == signed


def test_envelope_bytes_refuse_the_signed_bytes_of_another_envelope(alice):
    one, signed_one = seal_signed(alice, "thing", {"a": 1}, now=NOW)
    other, signed_other = seal_signed(alice, "thing", {"a": 1}, now=NOW + 1)
    other_kind, signed_kind = seal_signed(alice, "other", {"a": 1}, now=NOW)
    for envelope, signed in ((one, signed_other), (one, signed_kind), (other_kind, signed_one)):
        with pytest.raises(MalformedMessage):
            envelope_bytes(envelope, signed)


def test_canonical_fast_paths_encode_as_before():
    """Exact str/dict/bytes/float/int take a short path; subclasses and odd values the long one."""
    import enum

    class Name(str, enum.Enum):
        A = "a"

    class Count(enum.IntEnum):
        ONE = 1

    value = {"s": "plain", "u": "ünï", "k": Name.A, "i": Count.ONE, "f": 1.5, "b": b"\x01",
             "big": 2 ** 64 - 1, "neg": -2 ** 63, "l": [{"z": 1, "a": 2}], Name.A: "enum key"}
    assert msgpack.unpackb(canonical(value), raw=False) == {
        "s": "plain", "u": "ünï", "k": "a", "i": 1, "f": 1.5, "b": b"\x01", "big": 2 ** 64 - 1,
        "neg": -2 ** 63, "l": [{"z": 1, "a": 2}], "a": "enum key"}
    for bad in (2 ** 64, -2 ** 63 - 1, float("nan"), "\ud800", {1: "int key"}):
        with pytest.raises(MalformedMessage):
            canonical({"x": bad})
