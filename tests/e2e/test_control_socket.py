"""The control API after a crash: a process that takes its endpoint never gets the token (issue 6, 12b, 12f)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading

import pytest

from core.app.client import control_request
from core.errors import NotRunning

from .conftest import covey


class Impostor:
    """A local process's listener on the node's old control endpoint: records what it is sent."""

    def __init__(self, control: dict):
        if "socket" in control:
            path = control["socket"]
            if os.path.exists(path):
                os.unlink(path)       # the crashed node's socket file: anyone may replace it
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
        else:
            port = int(control["url"].rsplit(":", 1)[1])
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.received = b""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 14\r\nConnection: close\r\n\r\n{\"result\": []}")
                except OSError:
                    pass  # the client may hang up first; what it sent is already recorded

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def live_stranger():
    """A live local process that is not the node (its pid can be written into control.json)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_process_on_a_crashed_nodes_control_endpoint_never_gets_the_token(headless):
    node = headless("a")
    control = json.loads((node.home / "control.json").read_text())
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    impostor = Impostor(control)
    try:
        out = covey(node.home, "peers", "list", check=False)
    finally:
        impostor.close()
    assert out.returncode == 1 and "not running" in out.stderr
    assert control["token"].encode() not in impostor.received


def test_a_live_process_that_is_not_the_node_never_gets_the_token(headless, live_stranger):
    node = headless("a")
    control = json.loads((node.home / "control.json").read_text())
    assert "socket" in control and "url" not in control      # POSIX: a Unix socket, no TCP port
    assert stat.S_IMODE(os.stat(control["socket"]).st_mode) == 0o600
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    # the pid in the stale file now belongs to someone else (pid reuse), who also took the socket
    (node.home / "control.json").write_text(json.dumps({**control, "pid": live_stranger}))
    impostor = Impostor(control)
    try:
        with pytest.raises(NotRunning, match="not running"):
            control_request(node.home, "/v1/id", b"{}", timeout=5)
    finally:
        impostor.close()
    assert control["token"].encode() not in impostor.received


def test_the_tcp_fallback_checks_that_the_pid_is_the_listener(tmp_path, live_stranger):
    home = tmp_path / "win"
    home.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    control = {"url": f"http://127.0.0.1:{port}", "token": "f" * 64, "pid": live_stranger}
    (home / "control.json").write_text(json.dumps(control))
    impostor = Impostor(control)
    try:
        with pytest.raises(NotRunning):
            control_request(home, "/v1/id", b"{}", timeout=5)
    finally:
        impostor.close()
    assert b"f" * 64 not in impostor.received


def test_a_401_does_not_name_the_home(headless):
    node = headless("a")
    status, body = control_request(node.home, "/v1/id", b"{}", token=None, timeout=5)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert str(node.home) not in body["error"]["message"] and "/" not in body["error"]["message"]
    assert control_request(node.home, "/v1/id", b"{}", timeout=5)[1]["result"]["id"] == node.id


def test_proxy_set_tor_config_sets_the_tor_network_config(headless, tmp_path):
    # Issue 6, 12c: the setting had no command. A config without DirAuthority lines is refused
    # before any tor process starts (safe outside a network namespace), but the setting is saved.
    node = headless("a")
    config = tmp_path / "net.torrc"
    config.write_text("ClientUseIPv6 0\n")
    relative = os.path.relpath(config)
    out = covey(node.home, "proxy", "set", "--tor", "--tor-config", relative, check=False)
    assert out.returncode == 1 and "no DirAuthority lines" in out.stderr
    assert json.loads((node.home / "config.json").read_text())["tor_config"] == str(config.resolve())
    missing = covey(node.home, "proxy", "set", "--tor", "--tor-config", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "cannot read the tor config" in missing.stderr
    both = covey(node.home, "proxy", "set", "--tor", "--tor-control", "127.0.0.1:9051",
                 "--tor-config", str(config), check=False)
    assert both.returncode == 1 and "--tor-control" in both.stderr
