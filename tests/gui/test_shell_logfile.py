"""The log file in the home: rotated within its bound, and free of chat text and secrets."""
from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from core import logs
from desktop.shell.logfile import LOG_DIR, add_log_file, log_path, remove_log_file


@pytest.fixture
def info_level():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def test_the_log_rotates_and_stays_within_its_bound(tmp_path, info_level):
    handler = add_log_file(tmp_path, max_bytes=2000, backups=2)
    try:
        log = logging.getLogger("covey.test")
        for n in range(500):
            log.info("line %d of a long run", n)
    finally:
        remove_log_file(handler)
    files = sorted(p.name for p in (tmp_path / LOG_DIR).iterdir())
    assert files == ["covey.log", "covey.log.1", "covey.log.2"]
    assert all((tmp_path / LOG_DIR / f).stat().st_size <= 2000 for f in files)
    last = json.loads(log_path(tmp_path).read_text().splitlines()[-1])
    assert last["msg"] == "line 499 of a long run" and last["logger"] == "covey.test"
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / LOG_DIR).stat().st_mode) == 0o700
        assert stat.S_IMODE(log_path(tmp_path).stat().st_mode) == 0o600


def test_no_chat_text_or_secret_reaches_the_log(make_node, run, qtbot, address_of, info_level):
    alice, bob = make_node("alice"), make_node("bob")
    handler = add_log_file(alice.home)
    logs.log_events(alice.events)          # as the desktop app does for its node
    try:
        run(alice.add_peer(address_of(bob), name="bob"))
        qtbot.waitUntil(lambda: alice.identity.id in bob.connections, timeout=10000)
        alice.trust(bob.identity.id, "external")
        bob.trust(alice.identity.id, "external")
        text = "meet at the old mill at nine"
        run(bob.service("chat").send(alice.identity.id, text))
        qtbot.waitUntil(lambda: any(m["text"] == text for m in alice.service("chat").read(bob.identity.id)),
                        timeout=10000)
        run(alice.set_proxy("socks5", "127.0.0.1", 1080, "proxyuser", "hunter2-proxy-password"))
        run(alice.psk_set())
        key = alice.psk().hex()
        run(alice.set_proxy("off"))
    finally:
        remove_log_file(handler)
    written = log_path(alice.home).read_text()
    assert "peer_connected" in written and "settings_changed" in written   # the file does get a trace
    for secret in (text, "old mill", "hunter2-proxy-password", key):
        assert secret not in written
