"""The one admission step: each reason, authorise before verify, reputation for the sender's own faults only."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from core import events as ev
from core.admission import Admission, Reason
from core.config import Settings
from core.errors import (InvalidSignature, MalformedMessage, NotAdmitted, NotTheSender, RefusedByPolicy,
                         ReplayDetected, StaleMessage, UpdateRejected)
from core.events import EventBus
from core.identity import Identity
from core.peers import Capability, PeerBook
from core.signed import seal
from core.store import Store

NOW = 1_800_000_000.0
START = 0.5   # a new peer's reputation


@pytest.fixture
def node(tmp_path):
    store = Store(tmp_path / "covey.db")
    events = EventBus()
    node = SimpleNamespace(settings=Settings(), events=events, peers=PeerBook(store, events), seen=[])
    events.on(ev.MESSAGE_REJECTED, node.seen.append)
    yield node
    store.close()


@pytest.fixture
def alice(node) -> Identity:
    """A CORE peer: may contribute to learning."""
    identity = Identity.generate("alice")
    node.peers.add_or_update(identity.id, name="alice")
    node.peers.set_tier(identity.id, "core")
    return identity


def reputation(node, peer: Identity) -> float:
    return node.peers.get(peer.id).reputation


def refused(admission: Admission, sender: str, envelope, **kw) -> NotAdmitted:
    with pytest.raises(NotAdmitted) as info:
        admission.admit(sender, envelope, now=NOW, **kw)
    return info.value


def not_a_member(signer, body):
    raise RefusedByPolicy("not a member of this task")


def shape_is_wrong(signer, body):
    raise UpdateRejected("shape", "weight 'w' has the wrong shape")


def body_is_malformed(signer, body):
    raise MalformedMessage("the body lacks a task")


# (how to make the envelope and call, expected reason, expected code, typed cause, costs reputation)
def malformed(alice, bob):
    return alice.id, {"kind": "k"}, {}


def other_signer(alice, bob):
    return alice.id, seal(bob, "k", {}, now=NOW), {}


def unauthorised(alice, bob):
    return alice.id, seal(alice, "k", {}, now=NOW), {"authorize": not_a_member}


def stale(alice, bob):
    return alice.id, seal(alice, "k", {}, now=NOW - 1000), {}


def bad_signature(alice, bob):
    return alice.id, dict(seal(alice, "k", {}, now=NOW), sig=bytes(64)), {}


def invalid(alice, bob):
    return alice.id, seal(alice, "k", {}, now=NOW), {"validate": shape_is_wrong}


def invalid_body(alice, bob):
    return alice.id, seal(alice, "k", {}, now=NOW), {"validate": body_is_malformed}


CASES = [
    (malformed, Reason.MALFORMED, "malformed", MalformedMessage, True),
    (other_signer, Reason.NOT_SENDER, "not_sender", NotTheSender, True),
    (unauthorised, Reason.NOT_AUTHORISED, "not_allowed", RefusedByPolicy, False),
    (stale, Reason.STALE, "stale", StaleMessage, False),
    (bad_signature, Reason.BAD_SIGNATURE, "bad_signature", InvalidSignature, True),
    (invalid, Reason.INVALID, "shape", UpdateRejected, True),
    (invalid_body, Reason.INVALID, "malformed", MalformedMessage, True),
]


@pytest.mark.parametrize("make,reason,code,cause,penalized", CASES, ids=[c[0].__name__ for c in CASES])
def test_each_reason_is_typed_reported_and_costs_reputation_only_for_the_senders_own_fault(
        node, alice, make, reason, code, cause, penalized):
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)
    sender, envelope, kw = make(alice, Identity.generate("bob"))
    exc = refused(admission, sender, envelope, task="t1", **kw)
    assert exc.rejection.reason is reason and exc.rejection.code == code
    assert exc.rejection.penalized is penalized and reason.peer_fault is penalized
    assert isinstance(exc.__cause__, cause) and exc.code == exc.__cause__.code  # what the peer is told
    assert reputation(node, alice) == (pytest.approx(START - 0.1) if penalized else START)
    [event] = node.seen
    assert event.data["peer"] == alice.id and event.data["type"] == "k" and event.data["code"] == code
    assert event.data["task"] == "t1"


def test_a_replay_is_refused_without_a_reputation_cost(node, alice):
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)
    envelope = seal(alice, "k", {"n": 1}, now=NOW)
    assert admission.admit(alice.id, envelope, now=NOW).body == {"n": 1}
    exc = refused(admission, alice.id, copy.deepcopy(envelope))
    assert exc.rejection.reason is Reason.REPLAY and isinstance(exc.__cause__, ReplayDetected)
    assert reputation(node, alice) == START and [e.data["code"] for e in node.seen] == ["replay"]


def test_the_capability_is_checked_before_the_signature(node, alice):
    outsider = Identity.generate("outsider")
    node.peers.add_or_update(outsider.id, name="outsider")
    node.peers.set_tier(outsider.id, "external")   # EXTERNAL may not contribute to learning
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)
    exc = refused(admission, outsider.id, dict(seal(outsider, "k", {}, now=NOW), sig=bytes(64)))
    assert exc.rejection.reason is Reason.NOT_AUTHORISED and isinstance(exc.__cause__, RefusedByPolicy)
    assert reputation(node, outsider) == START and len(admission.verifier) == 0


def test_an_unauthorised_envelope_with_a_bad_signature_is_refused_unverified(node, alice, monkeypatch):
    verified = []
    monkeypatch.setattr("core.signed.verify", lambda *args: verified.append(args))
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)
    envelope = dict(seal(alice, "k", {"task": "t9"}, now=NOW), sig=bytes(64))
    seen = []

    def members_only(signer, body):
        seen.append(body["task"])
        raise RefusedByPolicy("not a member")

    exc = refused(admission, alice.id, envelope, authorize=members_only)
    assert exc.rejection.reason is Reason.NOT_AUTHORISED and seen == ["t9"]
    assert verified == [] and len(admission.verifier) == 0   # no signature work, no replay memory
    assert reputation(node, alice) == START


def test_a_sender_the_service_does_not_hold_accountable_loses_no_reputation(node, alice):
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE, accountable=lambda peer: False)
    exc = refused(admission, alice.id, dict(seal(alice, "k", {}, now=NOW), sig=bytes(64)))
    assert exc.rejection.reason is Reason.BAD_SIGNATURE and not exc.rejection.penalized
    assert reputation(node, alice) == START and len(node.seen) == 1


def test_a_services_own_word_replaces_a_reasons_code(node, alice):
    admission = Admission(node, "k", None, words={Reason.NOT_SENDER: "not_participant"})
    exc = refused(admission, alice.id, seal(Identity.generate("carol"), "k", {}, now=NOW))
    assert exc.rejection.reason is Reason.NOT_SENDER and exc.rejection.code == "not_participant"


def test_events_and_logs_are_rate_limited_per_peer_but_every_rejection_counts(node, alice, caplog):
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)
    caplog.set_level("DEBUG", logger="covey.admission")
    for _ in range(30):
        refused(admission, alice.id, {"not": "an envelope"})
    assert 1 <= len(node.seen) <= 10
    assert len([r for r in caplog.records if r.name == "covey.admission"]) == len(node.seen)
    assert node.peers.get(alice.id).banned   # every fault counted: 0.5 -> at or below the ban threshold


async def test_an_async_validation_is_awaited_and_its_value_returned(node, alice):
    admission = Admission(node, "k", Capability.LEARN_CONTRIBUTE)

    async def check(signer, body):
        return body["n"] * 2

    admitted = await admission.admit_async(alice.id, seal(alice, "k", {"n": 21}, now=NOW), validate=check,
                                           now=NOW)
    assert (admitted.signer, admitted.body, admitted.value) == (alice.id, {"n": 21}, 42)

    async def refuse(signer, body):
        raise UpdateRejected("validation", "held-out loss too high")

    with pytest.raises(NotAdmitted) as info:
        await admission.admit_async(alice.id, seal(alice, "k", {"n": 1}, now=NOW), validate=refuse, now=NOW)
    assert info.value.rejection.code == "validation" and reputation(node, alice) < START
    assert node.seen[-1].data["code"] == "validation"
