"""`covey tasks ...` end to end: two headless node processes on loopback, driven by the command."""
from __future__ import annotations

import json

from .conftest import wait_for


def connected_core_pair(headless):
    alice, bob = headless("alice"), headless("bob")
    alice.json("peers", "add", bob.address, "--name", "bob")
    wait_for(lambda: any(p["id"] == alice.id and p["connected"] for p in bob.json("peers", "list")))
    bob.json("peers", "trust", alice.id, "core")
    return alice, bob


def test_tasks_run_list_show_types(headless, tmp_path):
    alice, bob = connected_core_pair(headless)
    types = alice.json("tasks", "types")
    assert [t["type"] for t in types] == ["echo", "dataset.digest", "dataset.stats", "model.evaluate", "bench.probe"]
    assert {a["name"] for a in types[2]["args"]} >= {"dataset", "column", "quantiles", "bins", "range"}
    assert types[1]["datasets"] == ["digits", "synthetic"]

    run = alice.json("tasks", "run", "bob", "echo", "text=hello world")
    assert set(run) >= {"task", "type", "state", "result", "proof", "verified"}
    assert run["state"] == "done" and run["verified"] is True and run["result"] == {"text": "hello world", "length": 11}
    assert run["proof"]["dsse"]["signatures"][0]["keyid"] == bob.id
    assert run["proof"]["statement"]["predicate"]["executor"] == bob.id

    stats = alice.json("tasks", "run", "bob", "dataset.stats", "dataset=digits", "column=label",
                       "bins=10", "range=0,10", "quantiles=0.5")
    assert stats["verified"] and stats["result"]["count"] == 1797 and len(stats["result"]["histogram"]) == 10

    from core.learning import tensors
    from core.learning.models import build_model, get_weights
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(tensors.encode(get_weights(build_model("mlp", 64, 10, (8, 8), seed=1, hidden=8))))
    ev = alice.json("tasks", "run", "bob", "model.evaluate", "dataset=digits", "hidden=8", f"weights=@{weights}",
                    "--timeout", "90")
    assert ev["verified"] and ev["result"]["rows"] == 360
    assert ev["proof"]["statement"]["predicate"]["quality"]["accuracy"] == ev["result"]["accuracy"]

    over_http = alice.json("tasks", "run", "bob", "bench.probe", "ms=20", "n=16", "--http")
    assert over_http["verified"] and over_http["via"] == "http" and over_http["result"]["n"] == 16

    listed = alice.json("tasks", "list")
    assert [t["task"] for t in listed] == [over_http["task"], ev["task"], stats["task"], run["task"]]
    assert all(t["state"] == "done" and t["verified"] for t in listed)
    served = bob.json("tasks", "list", "--role", "served")
    assert {t["task"] for t in served} == {t["task"] for t in listed}

    shown = alice.json("tasks", "show", run["task"][:8])
    assert shown["verification"]["verified"] is True and shown["verification"]["executor"] == bob.id
    assert shown["proof"]["statement"]["subject"][0]["name"] == "result"
    text = alice.run("tasks", "show", run["task"]).stdout
    assert "verification" in text and run["task"] in text


def test_tasks_errors_name_their_cause(headless):
    alice, bob = connected_core_pair(headless)

    def refused(*args) -> str:
        proc = alice.run("tasks", "run", *args, check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        return proc.stderr

    assert "no peer matches 'nobody'" in refused("nobody", "echo", "text=x")
    assert "unknown task type 'shell'" in refused("bob", "shell", "cmd=ls")
    assert "argument 'bins' must be an integer from 1 to 256" in refused("bob", "dataset.stats", "dataset=digits",
                                                                       "column=1", "bins=0")
    assert "bins: 'many' is not an integer" in refused("bob", "dataset.stats", "dataset=digits", "column=1",
                                                      "bins=many")
    assert "unknown dataset '/etc/passwd'" in refused("bob", "dataset.digest", "dataset=/etc/passwd")
    assert "give an absolute path" in refused("bob", "model.evaluate", "dataset=digits", "weights=@rel.bin")
    assert "timed out after" in refused("bob", "bench.probe", "ms=5000", "--timeout", "1")
    bob.json("peers", "trust", alice.id, "sandbox")
    assert ("refused by policy: only CORE peers may delegate tasks to this node; you are SANDBOX"
            in refused("bob", "echo", "text=x"))
    assert "refused by policy" in refused("bob", "echo", "text=x", "--http")
    states = [t["state"] for t in alice.json("tasks", "list")]
    assert states == ["refused", "refused", "failed", "refused"]   # newest first; the rest never left alice
    bob.json("peers", "trust", alice.id, "core")
    assert alice.json("tasks", "run", "bob", "echo", "text=after")["verified"]   # bob kept serving
