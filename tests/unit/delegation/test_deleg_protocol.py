"""The delegation protocol's pure parts: the HTTP JSON form, KEY=VALUE arguments, the setting."""
from __future__ import annotations

import json

import pytest

from core.config import Settings, load_settings
from core.delegation import protocol as proto
from core.delegation.tasks import TASK_TYPES
from core.errors import BadRequest


def test_json_form_round_trips_bytes_anywhere():
    value = {"nonce": b"\x00\xff" * 8, "body": {"args": {"weights": b"abc", "text": "t"}, "list": [b"", 1.5]}}
    text = json.dumps(proto.to_json_form(value))
    assert '"$base64": "AP8A/wD/AP8A/wD/AP8A/w=="' in text
    assert proto.from_json_form(json.loads(text)) == value


@pytest.mark.parametrize("bad", [{"$base64": "!!"}, {"$base64": "AA==", "x": 1}, {"$base64": 5}, {"$other": 1}])
def test_json_form_refuses_what_is_not_its_shape(bad):
    with pytest.raises(ValueError):
        proto.from_json_form({"a": bad})


def test_json_form_refuses_deep_nesting():
    deep = current = {}
    for _ in range(40):
        current["x"] = {}
        current = current["x"]
    with pytest.raises(ValueError, match="deeper"):
        proto.from_json_form(deep)


def test_every_task_type_declares_its_arguments_and_their_defaults_pass_its_check():
    assert set(proto.ARGS) == set(TASK_TYPES)
    for name, specs in proto.ARGS.items():
        args = {s.name: s.default for s in specs if s.default is not None}
        for s in specs:
            if s.required:
                args[s.name] = {"text": "x", "dataset": "d", "column": 0, "file": b"w"}[s.kind]
        assert set(TASK_TYPES[name].check(args)) >= {s.name for s in specs if s.default is not None}


def test_key_value_pairs_are_read_by_declared_kind():
    args, files = proto.parse_pairs("dataset.stats", ["dataset=digits", "column=label", "bins=8",
                                                      "quantiles=0.1,0.9", "noise_sigma=0.5", "range=0,10"])
    assert args == {"dataset": "digits", "column": "label", "bins": 8, "quantiles": [0.1, 0.9],
                    "noise_sigma": 0.5, "range": [0.0, 10.0]} and files == {}
    args, files = proto.parse_pairs("model.evaluate", ["dataset=d", "weights=@/tmp/w.safetensors"])
    assert files == {"weights": "/tmp/w.safetensors"} and args == {"dataset": "d"}
    assert proto.parse_pairs("echo", ["text=a=b"])[0] == {"text": "a=b"}


@pytest.mark.parametrize("pairs,message", [
    (["bins"], "must be KEY=VALUE"), (["bins=1", "bins=2"], "given twice"),
    (["bins=many"], "'many' is not an integer"), (["column=third"], "not a column index or label"),
])
def test_bad_pairs_are_named(pairs, message):
    with pytest.raises(ValueError, match=message):
        proto.parse_pairs("dataset.stats", pairs)


def test_a_file_argument_must_be_given_as_a_file():
    with pytest.raises(ValueError, match="weights=@/absolute/path"):
        proto.parse_pairs("model.evaluate", ["weights=AAAA"])


def test_task_datasets_setting_defaults_validation_and_sources(tmp_path, monkeypatch):
    assert Settings().task_datasets == {"digits": "digits", "synthetic": "synthetic"}
    for bad in ({"d": "relative.csv"}, {"d": "/etc/passwd"}, {"": "digits"}, {"d": 3}, ["digits"]):
        with pytest.raises(BadRequest, match="task_datasets"):
            Settings(task_datasets=bad)
    (tmp_path / "config.json").write_text(json.dumps({"task_datasets": {"mine": "/data/x.npz"}}))
    assert load_settings(tmp_path).task_datasets == {"mine": "/data/x.npz"}
    monkeypatch.setenv("COVEY_TASK_DATASETS", '{"hand": "digits"}')
    assert load_settings(tmp_path).task_datasets == {"hand": "digits"}
    monkeypatch.setenv("COVEY_TASK_DATASETS", "not json")
    with pytest.raises(BadRequest, match="task_datasets"):
        load_settings(tmp_path)
