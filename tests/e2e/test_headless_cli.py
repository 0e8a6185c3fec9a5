"""The `covey` command against real headless nodes (the issue's "done when")."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess

import pytest

from .conftest import Headless, covey, covey_json, wait_for


def peer(node: Headless, other: Headless) -> dict | None:
    return next((p for p in node.json("peers", "list") if p["id"] == other.id), None)


def test_init_creates_identity_with_private_key_0600(tmp_path):
    home = tmp_path / "n"
    first = covey_json(home, "init", "--name", "ann")
    assert len(first["id"]) == 64 and first["name"] == "ann" and first["created"]
    assert stat.S_IMODE(os.stat(home / "identity.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "identity.pub").st_mode) == 0o644
    again = covey_json(home, "init")
    assert again["id"] == first["id"] and not again["created"]


def test_self_test_shows_tampering_and_wrong_key_rejected(tmp_path):
    result = covey_json(tmp_path / "n", "crypto", "self-test")
    assert result["ok"] and all(result["checks"].values()) and len(result["checks"]) == 3


def test_three_nodes_connect_in_each_mode_and_survive_kill_9(headless, tmp_path):
    a, b, c = headless("a"), headless("b"), headless("c")
    for n in (a, b, c):
        assert n.json("id")["fingerprint"].count(" ") == 7
    # a <-> b asymmetric (default), pinned by key
    b.run("peers", "add", a.address, "--key", a.id, "--name", "a")
    b.run("peers", "trust", "a", "core")
    # a <-> c with no encryption (both prefer and accept none); a <-> b stays asymmetric (b's minimum)
    a.run("crypto", "mode", "none", "--min", "none")
    c.run("crypto", "mode", "none", "--min", "none")
    c.run("peers", "add", a.address)
    # b <-> c symmetric with a shared network key
    keyfile = tmp_path / "net.key"
    b.run("crypto", "psk", "generate")
    b.run("crypto", "psk", "export", str(keyfile))
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    c.run("crypto", "psk", "import", str(keyfile))
    b.run("crypto", "mode", "symmetric")
    assert b.json("crypto", "mode") == {"mode": "symmetric", "min": "symmetric", "network_key": True,
                                       "offered": ["symmetric"]}
    c.run("peers", "add", b.address)

    rows_b = wait_for(lambda: (lambda p: p if p and p["connected"] and p["mode"] == "symmetric" else None)(peer(b, c)))
    assert rows_b["tier"] == "unknown"
    rows_c = {p["id"]: p for p in c.json("peers", "list")}
    assert rows_c[a.id]["mode"] == "none" and rows_c[a.id]["connected"]
    assert rows_c[b.id]["mode"] == "symmetric"
    # b raised its minimum to symmetric, so its link to a (no network key) was dropped and is refused now
    out = a.run("peers", "add", b.address, check=False)
    assert out.returncode == 1 and "requires at least symmetric" in out.stderr and "psk import" in out.stderr
    row_ba = peer(b, a)
    assert row_ba["tier"] == "core" and row_ba["name"] == "a"
    for row in b.json("peers", "list"):
        assert set(row) >= {"id", "name", "address", "tier", "connected", "mode", "reputation",
                            "banned", "last_seen"}

    # kill -9 c, restart it on the same port: state survived, peers reconnect
    port = c.address.rsplit(":", 1)[1]
    c.stop(signal.SIGKILL)
    wait_for(lambda: not (peer(b, c) or {}).get("connected"))
    c2 = Headless(c.home, "c", f"127.0.0.1:{port}").start()
    try:
        assert c2.id == c.id
        rows = {p["id"]: p for p in c2.json("peers", "list")}
        assert set(rows) == {a.id, b.id}
        wait_for(lambda: (peer(b, c2) or {}).get("connected"), timeout=30)
        wait_for(lambda: all(p["connected"] for p in c2.json("peers", "list")), timeout=30)
    finally:
        c2.stop()


def test_sigterm_stops_within_two_seconds_and_removes_control_file(headless):
    a, b = headless("a"), headless("b")
    b.run("peers", "add", a.address)
    took = a.stop(signal.SIGTERM)
    assert took < 2.0 and a.proc.returncode == 0
    assert not (a.home / "control.json").exists()
    log = [json.loads(line) for line in (a.home / "stderr.log").read_text().splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "stopped" for rec in log)
    assert all({"ts", "level", "msg"} <= set(rec) for rec in log)


def test_commands_without_a_running_node_say_how_to_start_one(tmp_path):
    covey_json(tmp_path / "n", "init")
    out = covey(tmp_path / "n", "peers", "list", check=False)
    assert out.returncode == 1 and "covey --home" in out.stderr and "--headless" in out.stderr


def test_control_api_refuses_missing_wrong_token_and_malformed_requests(headless):
    from core.app.client import control_request
    a = headless("a")
    control = json.loads((a.home / "control.json").read_text())
    assert stat.S_IMODE(os.stat(a.home / "control.json").st_mode) == 0o600

    def post(path, data: bytes, token: str | None):
        # the CLI's own client: the control API listens on a Unix socket in the home
        return control_request(a.home, path, data, token=token, timeout=5)

    assert post("/v1/id", b"{}", None)[0] == 401
    status, body = post("/v1/id", b"{}", "0" * 64)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = post("/v1/id", b"{not json", control["token"])
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = post("/v1/peers.trust", json.dumps({"peer": "x"}).encode(), control["token"])
    assert status == 400 and "missing argument 'tier'" in body["error"]["message"]
    status, body = post("/v1/peers.trust", json.dumps({"peer": "x", "tier": "god"}).encode(), control["token"])
    assert status == 400 and "core, sandbox" in body["error"]["message"]
    status, body = post("/v1/nope", b"{}", control["token"])
    assert status == 400 and "unknown command" in body["error"]["message"]
    status, body = post("/v1/id", b"x" * 100_000, control["token"])
    assert status == 413
    assert post("/v1/id", b"{}", control["token"])[1]["result"]["id"] == a.id  # still serving


def test_corrupt_key_file_and_wrong_passphrase_get_clear_messages(tmp_path):
    home = tmp_path / "n"
    covey_json(home, "init")
    (home / "identity.key").write_text("{ garbage")
    out = covey(home, "--headless", check=False)
    assert out.returncode == 1 and "identity.key" in out.stderr and "covey init" in out.stderr

    locked = tmp_path / "locked"
    pw = tmp_path / "pw"
    pw.write_text("correct horse")
    covey(locked, "--passphrase-file", str(pw), "init")
    pw.write_text("wrong")
    out = covey(locked, "--passphrase-file", str(pw), "--headless", check=False)
    assert out.returncode == 1 and "passphrase does not unlock" in out.stderr


def test_corrupt_database_is_refused_and_left_untouched(tmp_path):
    home = tmp_path / "n"
    covey_json(home, "init")
    garbage = b"this is not a sqlite database" * 100
    (home / "covey.db").write_bytes(garbage)
    out = covey(home, "--headless", "--listen", "127.0.0.1:0", check=False)
    assert out.returncode == 1 and "covey.db" in out.stderr and "Nothing was changed" in out.stderr
    assert (home / "covey.db").read_bytes() == garbage


def test_nodes_find_each_other_on_the_lan_without_configuration(tmp_path, monkeypatch):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Discovery on loopback only (tests never multicast on a real LAN), on a port of this test's own.
    monkeypatch.setenv("COVEY_DISCOVERY", "1")
    monkeypatch.setenv("COVEY_DISCOVERY_PORT", str(port))
    monkeypatch.setenv("COVEY_DISCOVERY_INTERFACE", "127.0.0.1")
    monkeypatch.setenv("COVEY_DISCOVERY_INTERVAL", "0.5")
    import tests.e2e.conftest as harness
    monkeypatch.setattr(harness, "env", lambda: {k: v for k, v in os.environ.items() if k != "DISPLAY"})
    nodes = [Headless(tmp_path / n, n).start() for n in ("a", "b", "c")]
    try:
        for node in nodes:
            others = {n.id for n in nodes} - {node.id}
            rows = wait_for(lambda: (lambda r: r if {p["id"] for p in r if p["connected"]} >= others else None)(
                node.json("peers", "list")), timeout=20)
            assert all(p["tier"] == "unknown" and p["source"] in ("lan", "inbound") for p in rows)
    finally:
        for node in nodes:
            node.stop()


def test_a_home_the_desktop_app_holds_is_refused_and_a_crashed_apps_lock_is_not(tmp_path):
    """The desktop app locks its home with a Qt QLockFile (desktop/shell/single.py); a
    headless node on the same home would run a second node with the same identity."""
    from PySide6.QtCore import QLockFile
    home = tmp_path / "held"
    home.mkdir()
    lock = QLockFile(str(home / "desktop.lock"))
    assert lock.tryLock(0)
    try:
        refused = covey(home, "--headless", "--listen", "127.0.0.1:0", check=False, timeout=60)
        assert refused.returncode != 0
        assert f"the Covey app (pid {os.getpid()}) runs the node of {home}" in refused.stderr
        assert not (home / "control.json").exists()
    finally:
        lock.unlock()
    # A lock file left by an app that is gone does not keep a node from starting.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (home / "desktop.lock").write_text(f"{gone.pid}\ncovey\nhost\n")
    node = Headless(home, "after").start()
    try:
        assert node.json("id")["name"] == "after"
    finally:
        node.stop()
