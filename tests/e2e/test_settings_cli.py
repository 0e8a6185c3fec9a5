"""A bad setting stops `covey --headless` at load time with a sentence naming it (issue 7, item 4):
before, a bad discovery setting crashed Node.start with a raw ValueError after the identity
and the database had been created."""
from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import COVEY, env


def headless(home, extra_env: dict) -> subprocess.CompletedProcess:
    """`covey --headless` with ``extra_env`` (a None value removes the variable)."""
    merged = {k: v for k, v in {**env(), **extra_env}.items() if v is not None}
    return subprocess.run([*COVEY, "--home", str(home), "--headless", "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, env=merged, timeout=30)


@pytest.mark.parametrize("setting, value", [("discovery_group", "bogus"),
                                            ("discovery_interface", "eth0"),
                                            ("discovery_port", "70000")])
def test_a_bad_discovery_setting_in_the_environment_is_named_before_anything_starts(tmp_path, setting, value):
    home = tmp_path / "home"
    out = headless(home, {"COVEY_DISCOVERY": "1", f"COVEY_{setting.upper()}": value})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"setting {setting}: " in out.stderr and f"COVEY_{setting.upper()}" in out.stderr
    assert not (home / "identity.key").exists() and not (home / "covey.db").exists()


def test_a_bad_value_in_config_json_is_named_with_the_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"discovery": True, "discovery_interval": 0}))
    out = headless(home, {"COVEY_DISCOVERY": None})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "setting discovery_interval: " in out.stderr and "config.json" in out.stderr
