"""Task specs and ml.* message bodies: what is accepted, and what is refused with a reason."""
import io

import pytest

from core.errors import BadRequest, MalformedMessage
from core.learning import follow
from core.learning import protocol as proto


def test_default_spec_is_valid_fedavg_on_digits():
    spec = proto.TaskSpec.from_dict({})
    assert (spec.model, spec.dataset, spec.aggregator, spec.validate) == ("mlp", "digits", "fedavg", True)
    assert proto.TaskSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("aggregator", ["krum", "multikrum", "median", "trimmed-mean"])
def test_secure_aggregation_with_a_rule_that_reads_single_updates_is_refused_saying_why(aggregator):
    with pytest.raises(BadRequest, match=f"hides every single update.*cannot run {aggregator}"):
        proto.TaskSpec.from_dict({"aggregator": aggregator, "secure_agg": True, "validate": False})


def test_secure_aggregation_with_per_update_validation_is_refused_saying_why():
    with pytest.raises(BadRequest, match="cannot validate each update"):
        proto.TaskSpec.from_dict({"secure_agg": True, "validate": True})


def test_secure_aggregation_composes_with_fedavg_fedprox_and_dp():
    for agg in ("fedavg", "fedprox"):
        spec = proto.TaskSpec.from_dict({"aggregator": agg, "secure_agg": True, "validate": False,
                                         "dp_noise": 1.0, "dp_clip": 1.0})
        assert spec.secure_agg and spec.dp


@pytest.mark.parametrize("fields,words", [
    ({"dp_noise": 1.0}, "both --dp-noise"),
    ({"dp_noise": 1.0, "dp_clip": 1.0, "validate": True}, "validate off"),
    ({"attackers": 2}, "needs --attack"),
    ({"tiers": ["external"]}, "only CORE and SANDBOX"),
    ({"rounds": 0}, "rounds must be"),
    ({"lr": float("nan")}, "lr must be"),
    ({"partition": "dirichlet:-1"}, "alpha must be a positive"),
    ({"model": "resnet"}, "model"),
    ({"surprise": 1}, "unknown field"),
])
def test_impossible_specs_are_refused_with_a_reason(fields, words):
    with pytest.raises((BadRequest, MalformedMessage), match=words):
        proto.TaskSpec.from_dict(fields)


def test_fedprox_without_mu_gets_a_small_proximal_term():
    assert proto.TaskSpec.from_dict({"aggregator": "fedprox"}).prox_mu == 0.01


def test_byzantine_count_defaults_to_attackers_then_a_fifth():
    assert proto.TaskSpec.from_dict({"aggregator": "krum", "attack": "sign_flip", "attackers": 2}).f(10) == 2
    assert proto.TaskSpec.from_dict({"aggregator": "krum"}).f(10) == 2
    assert proto.TaskSpec.from_dict({"aggregator": "median"}).f(10) == 0


def _update(**over):
    body = {"task": "0123456789abcdef", "round": 3, "round_id": b"r" * 16, "weights": b"x",
            "n_examples": 10, "loss": 0.5}
    body.update(over)
    return body


def test_update_body_parses():
    upd = proto.parse_update(_update())
    assert (upd.task, upd.round, upd.n_examples, upd.weights, upd.masked) == \
        ("0123456789abcdef", 3, 10, b"x", None)


@pytest.mark.parametrize("over", [
    {"task": "../../etc"}, {"round": "3"}, {"round": True}, {"n_examples": 0}, {"weights": None},
    {"masked": b"m"},  # both weights and masked
    {"round_id": "text"},
])
def test_malformed_update_bodies_are_refused(over):
    with pytest.raises(MalformedMessage):
        proto.parse_update(_update(**over))


ME = "a" * 64


def _round(entry=None, **over):
    body = {"task": "0123456789abcdef", "round": 1, "attempt": 0, "round_id": b"r" * 16,
            "weights": b"w" * 10, "deadline": 30.0, "n_partitions": 10, "weight_cap": 100, "spec": {},
            "assign": {ME: {"partition": 2, "attack": None, "secagg": None, "aggregator": None, **(entry or {})},
                       "b" * 64: {"partition": 3, "attack": "noise", "secagg": None, "aggregator": None}}}
    body.update(over)
    return body


def test_round_announcement_parses_and_caps_the_weights_size():
    ann = proto.parse_round(_round(), 1024, ME)
    assert (ann.round, ann.partition, ann.n_partitions, ann.attack) == (1, 2, 10, None)
    with pytest.raises(MalformedMessage, match="too long"):
        proto.parse_round(_round(), 5, ME)


def test_one_announcement_gives_each_worker_its_own_entry():
    other = proto.parse_round(_round(), 1024, "b" * 64)
    assert (other.partition, other.attack) == (3, "noise")
    with pytest.raises(MalformedMessage, match="assigns nothing to this node"):
        proto.parse_round(_round(), 1024, "c" * 64)


@pytest.mark.parametrize("over", [{"deadline": 0}, {"round_id": b"short"}, {"round": 0},
                                  {"assign": {ME: "partition 2"}}, {"assign": []}])
def test_round_announcements_out_of_range_are_refused(over):
    with pytest.raises(MalformedMessage):
        proto.parse_round(_round(**over), 1024, ME)


@pytest.mark.parametrize("entry", [{"partition": 10}, {"attack": "ddos"}, {"aggregator": "not a peer id"},
                                   {"secagg": "on"}])
def test_a_workers_entry_out_of_range_is_refused(entry):
    with pytest.raises(MalformedMessage):
        proto.parse_round(_round(entry), 1024, ME)


def test_cli_numeric_flags_are_typed_from_their_declaration():
    from core.app.cli import _command_args, build_parser
    args = build_parser().parse_args(["ml", "start", "--lr", "0.1", "--rounds", "5", "--model", "mlp"])
    assert _command_args("ml.start", args) == {"lr": 0.1, "rounds": 5, "model": "mlp"}
    with pytest.raises(SystemExit):  # argparse: "argument --rounds: invalid int value: 'many'"
        build_parser().parse_args(["ml", "start", "--rounds", "many"])


def test_follow_prints_one_plain_line_per_round_when_not_a_terminal():
    h = [{"round": r, "accuracy": 0.5 + r / 10, "loss": 1.0 / r, "accepted": 3, "rejected": 0,
          "seconds": 0.1, "epsilon": None} for r in (1, 2, 3)]
    states = iter([{"task": "t", "state": "running", "round": 2, "rounds": 3, "history": h[:2]},
                   {"task": "t", "state": "done", "round": 3, "rounds": 3, "history": h}])
    out = io.StringIO()
    final = follow.follow_status(lambda: next(states), {"task": "t", "state": "running", "round": 1,
                                                        "rounds": 3, "history": h[:1]}, out, poll=0)
    lines = out.getvalue().splitlines()
    assert final["state"] == "done"
    assert [line.split()[1] for line in lines[:3]] == ["1/3", "2/3", "3/3"]
    assert lines[-1] == "task t done"


def test_progress_line_shows_round_accuracy_loss_and_time_left():
    line = follow.progress_line({"round": 5, "rounds": 10, "accuracy": 0.9, "loss": 0.25,
                                 "epsilon": 1.5, "eta_seconds": 12.0})
    assert "round 5/10" in line and "acc 0.9000" in line and "loss 0.2500" in line
    assert "eps 1.50" in line and "~12 s left" in line and "#" * 12 in line
