"""One app per home, with real processes: a second launch raises the first one's window; a
crashed app's lock and socket do not block the next launch; a headless node on the home is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from core.identity import Identity
from desktop.shell.logfile import log_path
from desktop.shell.single import server_name
from tests.gui.test_app_process import covey, wait_for_file


@pytest.fixture
def env():
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", COVEY_DISCOVERY="false")


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    Identity.generate("olga").save(home)
    return home


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_log(home, text: str, proc: subprocess.Popen, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if log_path(home).exists() and text in log_path(home).read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"the app exited ({proc.returncode})")
        time.sleep(0.1)
    pytest.fail(f"{text!r} not in {log_path(home)}")


def test_a_second_launch_raises_the_first_window_and_exits(home, env):
    first = covey("--home", str(home), "--listen", "127.0.0.1:0", env=env)
    try:
        wait_for_file(home / "control.json", first)
        second = subprocess.run([sys.executable, "-m", "desktop.launcher", "--home", str(home),
                                 "--listen", "127.0.0.1:0"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0, second.stderr
        assert "its window was raised" in second.stderr
        wait_for_log(home, "another launch asked to show this window", first)
        # still one node on this home: the first one
        assert json.loads((home / "control.json").read_text())["pid"] == first.pid
        assert first.poll() is None
    finally:
        stop(first)
    assert first.returncode == 0


def test_a_crashed_app_does_not_block_the_next_launch(home, env):
    crashed = covey("--home", str(home), "--listen", "127.0.0.1:0", env=env)
    wait_for_file(home / "control.json", crashed)
    crashed.kill()                                      # no cleanup: lock, socket, control.json stay
    crashed.wait()
    assert (home / "desktop.lock").exists() and (home / "control.json").exists()
    assert (Path(tempfile.gettempdir()) / server_name(home)).exists()   # the stale socket file
    relaunched = covey("--home", str(home), "--listen", "127.0.0.1:0", env=env)
    try:
        deadline = time.monotonic() + 60
        while json.loads((home / "control.json").read_text()).get("pid") != relaunched.pid:
            assert relaunched.poll() is None, relaunched.stderr.read()
            assert time.monotonic() < deadline, "the relaunched app did not start its node"
            time.sleep(0.1)
        # and it answers on the socket the crashed app left behind: a third launch raises it
        third = subprocess.run([sys.executable, "-m", "desktop.launcher", "--home", str(home)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert third.returncode == 0 and "its window was raised" in third.stderr, third.stderr
    finally:
        stop(relaunched)
    assert relaunched.returncode == 0


def test_a_headless_node_on_the_home_is_refused_with_a_message(home, env, monkeypatch, qapp):
    headless = covey("--home", str(home), "--headless", "--listen", "127.0.0.1:0", env=env)
    try:
        wait_for_file(home / "control.json", headless)
        from PySide6.QtWidgets import QMessageBox

        from desktop import app
        shown = []
        monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text)))
        assert app.main(home, {"listen": "127.0.0.1:0", "name": None}, None) == 1
        assert len(shown) == 1 and "already running" in shown[0] and str(headless.pid) in shown[0]
        assert json.loads((home / "control.json").read_text())["pid"] == headless.pid   # untouched
    finally:
        stop(headless)


def test_a_launch_while_the_window_is_in_the_tray_brings_it_back(make_node, run, qtbot):
    import asyncio

    from desktop.shell.single import SingleInstance, ask_running_app
    from tests.gui.shell_helpers import open_window
    node = make_node("pia")
    instance = SingleInstance(node.home)
    assert instance.claim()
    try:
        win = open_window(node, qtbot, tray=True)
        instance.raise_requested.connect(win.bring_to_front)
        win.shell.prefs.set_close_choice("tray")
        win.close()
        qtbot.waitUntil(lambda: not win.isVisible())
        assert not SingleInstance(node.home).claim()          # the home is taken
        assert run(asyncio.to_thread(ask_running_app, node.home)) is True
        qtbot.waitUntil(win.isVisible)
        with qtbot.waitSignal(win.closed):
            win.quit()
    finally:
        instance.release()
    assert SingleInstance(node.home).claim()                  # released: the next launch may take it


def test_a_client_that_sends_garbage_is_dropped(make_node, run, qtbot):
    import asyncio

    from PySide6.QtNetwork import QLocalSocket

    from desktop.shell.single import SingleInstance, server_name
    node = make_node("quinn")
    instance = SingleInstance(node.home)
    assert instance.claim()
    raised = []
    instance.raise_requested.connect(lambda: raised.append(1))

    def send(data: bytes) -> bytes:
        sock = QLocalSocket()
        sock.connectToServer(server_name(node.home))
        assert sock.waitForConnected(3000)
        sock.write(data)
        sock.waitForBytesWritten(3000)
        answer = b""
        for _ in range(30):   # until the answer's newline, or the server hung up (3 s at most)
            answer += bytes(sock.readAll())
            if b"\n" in answer or sock.state() != QLocalSocket.ConnectedState:
                break
            sock.waitForReadyRead(100)
        answer += bytes(sock.readAll())
        sock.abort()
        return answer

    try:
        assert run(asyncio.to_thread(send, b"x" * 1000)) == b""
        assert run(asyncio.to_thread(send, b"delete everything\n")) == b""
        assert raised == []
        assert run(asyncio.to_thread(send, b"raise\n")) == b"ok\n"
        qtbot.waitUntil(lambda: raised == [1])
    finally:
        instance.release()
