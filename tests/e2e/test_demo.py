"""`covey demo`: four local nodes train the digits model together and stop again."""
from __future__ import annotations

import json
import subprocess

from .conftest import COVEY, env


def test_demo_trains_to_a_useful_accuracy_and_cleans_up(tmp_path):
    out = subprocess.run([*COVEY, "demo", "--dir", str(tmp_path / "demo"), "--rounds", "4", "--json"],
                         capture_output=True, text=True, env=env(), timeout=240)
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout)
    assert final["state"] == "done" and final["round"] == 4 and final["accuracy"] >= 0.9
    assert [h["round"] for h in final["history"]] == [1, 2, 3, 4]
    assert "sees 3 connected CORE peers" in out.stderr and "stopped the demo nodes" in out.stderr
    state = json.loads((tmp_path / "demo" / "cluster.json").read_text())
    assert all(node["pid"] is None for node in state["nodes"])
