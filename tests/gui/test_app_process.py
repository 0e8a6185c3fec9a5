"""`covey` with a display, as a real process: it serves the CLI and stops cleanly on SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.identity import Identity


def covey(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "desktop.launcher", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_file(path: Path, proc: subprocess.Popen, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"covey exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear")
        time.sleep(0.1)


def test_covey_opens_the_desktop_app_and_stops_cleanly_on_sigterm(tmp_path):
    home = tmp_path / "home"
    identity = Identity.generate("nina")
    identity.save(home)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DISPLAY=os.environ.get("DISPLAY") or ":0",
               COVEY_DISCOVERY="false")
    app = covey("--home", str(home), "--listen", "127.0.0.1:0", env=env)
    try:
        wait_for_file(home / "control.json", app)
        shown = subprocess.run([sys.executable, "-m", "desktop.launcher", "--home", str(home), "id", "--json"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == identity.id
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=30) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert "no display found" not in app.stderr.read()   # it really was the desktop app
    assert not (home / "control.json").exists()
