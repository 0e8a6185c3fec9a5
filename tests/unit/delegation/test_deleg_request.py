"""Signed task requests: build, open, and every refusal an executor must make."""
from __future__ import annotations

import copy

import pytest

from core.delegation.errors import TaskTimedOut, UnknownTaskType
from core.delegation.request import KIND, build_request, load_request, open_request, request_digest
from core.delegation.encoding import sha256_hex
from core.errors import BadRequest, InvalidSignature, MalformedMessage, ReplayDetected, StaleMessage
from core.identity import Identity
from core.signed import Verifier, canonical, seal

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def alice():
    return Identity.generate("alice")


def sealed(identity, body: dict, now: float = NOW) -> dict:
    return seal(identity, KIND, body, now=now)


def body(**over) -> dict:
    doc = {"task": "0f" * 16, "type": "echo", "args": {"text": "hi"}, "inputs": {},
           "deadline": NOW + 30}
    doc.update(over)
    return doc


def test_round_trip_and_fields(alice):
    req = build_request(alice, "echo", {"text": "hi"}, timeout=20, now=NOW)
    opened = open_request(Verifier(), req.envelope, now=NOW + 1)
    assert opened.digest == req.digest == request_digest(req.envelope)
    assert opened.digest == sha256_hex(canonical(req.envelope))
    assert (opened.type, opened.args, opened.requester) == ("echo", {"text": "hi"}, alice.id)
    assert opened.created == NOW and opened.deadline == NOW + 20
    summary = opened.summary()
    assert set(summary) == {"task", "type", "args", "inputs", "deadline", "nonce", "requester",
                            "created", "digest"}
    assert load_request(req.envelope).digest == req.digest


def test_bytes_arguments_carry_input_digests(alice):
    weights = b"\x01" * 100
    req = build_request(alice, "model.evaluate", {"dataset": "d", "weights": weights}, now=NOW)
    assert req.inputs == {"weights": sha256_hex(weights)}
    assert req.summary()["args"]["weights"] == {"bytes": 100, "sha256": sha256_hex(weights)}
    env = sealed(alice, body(type="model.evaluate", args={"dataset": "d", "weights": weights},
                             inputs={"weights": sha256_hex(b"other")}))
    with pytest.raises(MalformedMessage, match="input digests"):
        open_request(Verifier(), env, now=NOW)


def test_two_requests_never_share_a_digest(alice):
    a = build_request(alice, "echo", {"text": "hi"}, now=NOW)
    b = build_request(alice, "echo", {"text": "hi"}, now=NOW)
    assert a.task != b.task and a.digest != b.digest


def test_replayed_request_is_refused(alice):
    verifier = Verifier()
    req = build_request(alice, "echo", {"text": "hi"}, now=NOW)
    open_request(verifier, req.envelope, now=NOW)
    with pytest.raises(ReplayDetected):
        open_request(verifier, copy.deepcopy(req.envelope), now=NOW + 1)


def test_tampered_or_forged_request_is_refused(alice):
    req = build_request(alice, "echo", {"text": "hi"}, now=NOW)
    env = copy.deepcopy(req.envelope)
    env["body"]["args"]["text"] = "rm -rf"
    with pytest.raises(InvalidSignature):
        open_request(Verifier(), env, now=NOW)
    env = copy.deepcopy(req.envelope)
    env["signer"] = Identity.generate("mallory").id  # a forged requester
    with pytest.raises(InvalidSignature):
        open_request(Verifier(), env, now=NOW)


def test_stale_request_is_refused(alice):
    req = build_request(alice, "echo", {"text": "hi"}, now=NOW)
    with pytest.raises(StaleMessage):
        open_request(Verifier(), req.envelope, now=NOW + 3600)


def test_unknown_task_type_is_named(alice):
    with pytest.raises(UnknownTaskType, match="unknown task type 'shell.exec'.*echo"):
        open_request(Verifier(), sealed(alice, body(type="shell.exec")), now=NOW)
    with pytest.raises(UnknownTaskType):
        build_request(alice, "shell.exec", {})


def test_deadline_checks(alice):
    with pytest.raises(TaskTimedOut, match="deadline passed"):
        open_request(Verifier(skew=1000), sealed(alice, body(deadline=NOW + 5)), now=NOW + 6)
    for deadline in (NOW, NOW + 601, float("inf"), "soon", True):
        with pytest.raises(MalformedMessage):
            open_request(Verifier(), sealed(alice, body(deadline=deadline)), now=NOW)
    with pytest.raises(MalformedMessage):
        build_request(alice, "echo", {"text": "x"}, timeout=0)


@pytest.mark.parametrize("over", [{"task": "xyz"}, {"task": 5}, {"inputs": None}])
def test_malformed_fields(alice, over):
    with pytest.raises(MalformedMessage):
        open_request(Verifier(), sealed(alice, body(**over)), now=NOW)


def test_missing_or_extra_body_fields(alice):
    b = body()
    del b["deadline"]
    with pytest.raises(MalformedMessage):
        open_request(Verifier(), sealed(alice, b), now=NOW)
    with pytest.raises(MalformedMessage):
        open_request(Verifier(), sealed(alice, body(path="/etc/passwd")), now=NOW)


@pytest.mark.parametrize("type_, args, needle", [
    ("echo", {}, "'text' is required"),
    ("echo", {"text": "x" * 70_000}, "at most 65536"),
    ("echo", {"text": "x", "extra": 1}, "unknown argument"),
    ("echo", [], "must be a map"),
    ("bench.probe", {"ms": 0}, "'ms'"),
    ("bench.probe", {"n": 100_000}, "'n'"),
    ("bench.probe", {"ms": True}, "'ms'"),
    ("dataset.digest", {"dataset": 5}, "'dataset'"),
    ("dataset.digest", {"dataset": "d", "path": "/etc/passwd"}, "unknown argument(s) path"),
    ("dataset.stats", {"dataset": "d"}, "'column' is required"),
    ("dataset.stats", {"dataset": "d", "column": -1}, "'column'"),
    ("dataset.stats", {"dataset": "d", "column": 0, "quantiles": [1.5]}, "'quantiles'"),
    ("dataset.stats", {"dataset": "d", "column": 0, "quantiles": [0.5] * 33}, "'quantiles'"),
    ("dataset.stats", {"dataset": "d", "column": 0, "bins": 1000}, "'bins'"),
    ("dataset.stats", {"dataset": "d", "column": 0, "noise_sigma": -1}, "'noise_sigma'"),
    ("dataset.stats", {"dataset": "d", "column": 0, "noise_sigma": 1.0}, "minimum and maximum"),
    ("dataset.stats", {"dataset": "d", "column": 0, "range": [2, 1]}, "low < high"),
    ("dataset.stats", {"dataset": "d", "column": 0, "range": [0, float("nan")]}, "'range'"),
    ("model.evaluate", {"dataset": "d"}, "'weights' is required"),
    ("model.evaluate", {"dataset": "d", "weights": b""}, "1 to"),
    ("model.evaluate", {"dataset": "d", "weights": "AAAA"}, "got str"),
    ("model.evaluate", {"dataset": "d", "weights": b"x" * (8 * 2**20 + 1)}, "1 to 8388608 bytes"),
    ("model.evaluate", {"dataset": "d", "weights": b"x", "model": "resnet"}, "one of mlp, cnn"),
    ("model.evaluate", {"dataset": "d", "weights": b"x", "split": "train"}, "'split'"),
])
def test_arguments_are_validated(alice, type_, args, needle):
    with pytest.raises(BadRequest) as info:
        build_request(alice, type_, args, now=NOW)
    assert needle in str(info.value)


def test_a_request_made_from_checked_fields_is_the_dataclass_one():
    """TaskRequest._of (the opened and built requests' constructor) makes what __init__ makes,
    still frozen, with its digest computed on first use."""
    import dataclasses
    from core.delegation.request import TaskRequest, build_request
    from core.identity import Identity
    sent = build_request(Identity.generate("r"), "echo", {"text": "hi"})
    fields = {f.name: getattr(sent, f.name) for f in dataclasses.fields(TaskRequest)}
    made = TaskRequest(**fields)
    assert TaskRequest._of(**fields) == made == sent and sent.digest == made.digest
    with pytest.raises(dataclasses.FrozenInstanceError):
        sent.task = "other"   # type: ignore[misc]
