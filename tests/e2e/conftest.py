"""Headless `covey` processes on 127.0.0.1, driven through the `covey` command."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

COVEY = [sys.executable, "-m", "desktop.launcher"]


def env() -> dict:
    e = dict(os.environ, COVEY_DISCOVERY="0", COVEY_LOG_LEVEL="info")
    e.pop("DISPLAY", None)
    e.pop("COVEY_HOME", None)
    return e


def covey(home: Path, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run([*COVEY, "--home", str(home), *args], capture_output=True, text=True,
                          env=env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"covey {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def covey_json(home: Path, *args: str):
    return json.loads(covey(home, *args, "--json").stdout)


class Headless:
    """One `covey --headless` process."""

    def __init__(self, home: Path, name: str, listen: str = "127.0.0.1:0"):
        self.home, self.name, self.listen = home, name, listen
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> "Headless":
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = open(self.home / "stderr.log", "ab")
        self.proc = subprocess.Popen([*COVEY, "--home", str(self.home), "--name", self.name,
                                      "--headless", "--listen", self.listen],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {(self.home / 'stderr.log').read_text()}")
            control = self.home / "control.json"
            if control.exists() and json.loads(control.read_text() or "{}").get("pid") == self.proc.pid:
                info = covey_json(self.home, "id")
                self.address = info["listen"][0]
                self.id = info["id"]
                return self
            time.sleep(0.05)
        raise AssertionError(f"node {self.name} did not start within {timeout} s")

    def stop(self, sig=signal.SIGTERM, timeout: float = 10) -> float:
        """Signal the process; return how long it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        began = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        self.log.close()
        return time.monotonic() - began

    def run(self, *args: str, check: bool = True):
        return covey(self.home, *args, check=check)

    def json(self, *args: str):
        return covey_json(self.home, *args)


@pytest.fixture
def headless(tmp_path):
    started: list[Headless] = []

    def factory(name: str, listen: str = "127.0.0.1:0") -> Headless:
        node = Headless(tmp_path / name, name, listen).start()
        started.append(node)
        return node

    yield factory
    for node in started:
        if node.proc and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()


def wait_for(predicate, timeout: float = 15, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")
