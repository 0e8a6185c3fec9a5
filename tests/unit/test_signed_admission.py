"""The admission step for signed objects: authorise first, replay memory per signer, narrow future skew."""
from __future__ import annotations

import copy

import pytest

from core.errors import InvalidSignature, RefusedByPolicy, ReplayDetected, StaleMessage
from core.identity import Identity
from core.signed import DEFAULT_FUTURE_SKEW, NotTheSender, Verifier, seal

NOW = 1_800_000_000.0


@pytest.fixture
def alice() -> Identity:
    return Identity.generate("alice")


@pytest.fixture
def bob() -> Identity:
    return Identity.generate("bob")


def _allow(signer, body):
    return None


def test_an_unauthorised_signer_is_refused_before_the_signature_or_the_replay_memory(alice):
    verifier = Verifier()
    checked = []

    def members_only(signer, body):
        checked.append((signer, body["task"]))
        raise RefusedByPolicy(f"{signer[:8]} is not a member")

    env = seal(alice, "ml.update", {"task": "t1"}, now=NOW)
    env["sig"] = bytes(64)  # would fail verification: authorisation must come first
    with pytest.raises(RefusedByPolicy, match="not a member"):
        verifier.admit(env, "ml.update", alice.id, members_only, now=NOW)
    assert checked == [(alice.id, "t1")] and len(verifier) == 0


def test_an_object_signed_by_someone_else_than_its_sender_is_refused_unremembered(alice, bob):
    verifier = Verifier()
    env = seal(alice, "ml.update", {}, now=NOW)
    with pytest.raises(NotTheSender):
        verifier.admit(env, "ml.update", bob.id, _allow, now=NOW)
    assert len(verifier) == 0
    assert verifier.admit(env, "ml.update", alice.id, _allow, now=NOW)[0] == alice.id


def test_admit_still_checks_signature_and_replay(alice):
    verifier = Verifier()
    env = seal(alice, "k", {"x": 1}, now=NOW)
    with pytest.raises(InvalidSignature):
        verifier.admit(dict(env, sig=bytes(64)), "k", alice.id, _allow, now=NOW)
    verifier.admit(env, "k", alice.id, _allow, now=NOW)
    with pytest.raises(ReplayDetected):
        verifier.admit(copy.deepcopy(env), "k", alice.id, _allow, now=NOW + 1)


def test_one_signers_flood_neither_pushes_out_nor_blocks_another_signer(alice, bob):
    verifier = Verifier(max_entries=3)
    bobs = seal(bob, "k", {"n": 0}, now=NOW)
    verifier.open(bobs, "k", now=NOW)
    for i in range(50):  # far more than the window holds, all newer than bob's
        verifier.open(seal(alice, "k", {"i": i}, now=NOW + 2 + i / 100), "k", now=NOW + 5)
    assert verifier.remembers(alice.id) == 3 and verifier.remembers(bob.id) == 1
    with pytest.raises(ReplayDetected):  # bob's nonce was not pushed out
        verifier.open(copy.deepcopy(bobs), "k", now=NOW + 6)
    # bob's fresh message with a timestamp older than alice's flood is not refused as stale
    older = seal(bob, "k", {"n": 1}, now=NOW + 1)
    assert verifier.open(older, "k", now=NOW + 6)[0] == bob.id


def test_the_future_skew_is_narrow_and_the_past_skew_stays(alice):
    verifier = Verifier()
    with pytest.raises(StaleMessage, match="future"):
        verifier.open(seal(alice, "k", {}, now=NOW + DEFAULT_FUTURE_SKEW + 1), "k", now=NOW)
    assert verifier.open(seal(alice, "k", {}, now=NOW - 100), "k", now=NOW)[0] == alice.id


def test_expired_windows_make_room_for_new_signers_and_a_full_table_refuses_without_forgetting(alice, bob):
    carol = Identity.generate("carol")
    verifier = Verifier(skew=10, max_signers=2)
    first = seal(alice, "k", {}, now=NOW)
    verifier.open(first, "k", now=NOW)
    verifier.open(seal(bob, "k", {}, now=NOW), "k", now=NOW)
    with pytest.raises(StaleMessage, match="too many signers"):
        verifier.open(seal(carol, "k", {}, now=NOW), "k", now=NOW)
    with pytest.raises(ReplayDetected):  # a full table forgot nothing
        verifier.open(copy.deepcopy(first), "k", now=NOW + 1)
    # once the others' nonces left the window, their windows are dropped
    assert verifier.open(seal(carol, "k", {}, now=NOW + 30), "k", now=NOW + 30)[0] == carol.id
    assert verifier.remembers(alice.id) == 0 and verifier.remembers(carol.id) == 1
