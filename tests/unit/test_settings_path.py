"""One settings path (issue 7, item 4): every user action validates, persists once and
reconfigures only what it touches; argument rules live in the core, so the GUI gets them."""
from __future__ import annotations

import json
import os
import socket
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.errors import BadRequest
from core.identity import Identity
from core.node import Node

_RECORDING: list[tuple[Path, Counter]] = []   # (home, counts) while a test records opens


def _audit(event: str, args: tuple) -> None:
    """Counts every open of a file in a recorded home (open, Path.read_bytes, os.open alike)."""
    if event != "open" or not _RECORDING or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    home, counts = _RECORDING[-1]
    path = Path(os.fsdecode(args[0]))
    if home in path.parents:
        mode, flags = args[1], args[2] or 0
        writes = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR))
        name = path.name
        if name.startswith(".") and name.endswith(".tmp"):   # write_atomic's .NAME.PID.RANDOM.tmp
            name = name[1:].rsplit(".", 3)[0]
        counts[("write" if writes else "read", name)] += 1


sys.addaudithook(_audit)


class opens:
    """``with opens(home) as counts:`` counts[("read"|"write", file name)]."""

    def __init__(self, home: Path):
        self.entry = (Path(home), Counter())

    def __enter__(self) -> Counter:
        _RECORDING.append(self.entry)
        return self.entry[1]

    def __exit__(self, *exc) -> None:
        _RECORDING.remove(self.entry)


@pytest.fixture
async def node(tmp_path):
    home = tmp_path / "alice"
    Identity.generate("alice").save(home)
    (home / "network.key").write_text(os.urandom(32).hex() + "\n")
    (home / "config.json").write_text(json.dumps({"discovery": False}))
    node = Node.open(home, {"listen": "127.0.0.1:0"})
    await node.start()
    yield node
    await node.stop()


async def test_a_mode_change_reads_no_key_writes_config_once_and_keeps_the_http_session(node):
    session = node.transport._client()
    local = node.transport.local
    with opens(node.home) as counts:
        view = await node.set_mode("none")
        node.crypto_view(), node.info()   # what the panels re-read after the change
    assert view["mode"] == "none" and node.transport.local.pref == "none"
    assert counts[("read", "network.key")] == 0
    assert counts[("write", "config.json")] == 1
    assert json.loads((node.home / "config.json").read_text()) == {"discovery": False, "mode": "none",
                                                                   "min_mode": "none"}
    assert node.transport.local is not local          # a mode change needs a new endpoint ...
    assert node.transport._client() is session        # ... not a new outbound session


async def test_a_proxy_change_rebuilds_the_session_not_the_endpoint(node):
    session = node.transport._client()
    local = node.transport.local
    with opens(node.home) as counts:
        await node.set_proxy("socks5", "127.0.0.1", 1080, "covey", "s3cret")
    assert node.transport.local is local              # same Noise keys
    assert node.transport._client() is not session    # the proxy is in the session
    assert node.transport.proxy_password == "s3cret"
    assert counts[("read", "proxy.secret")] == 0 and counts[("read", "network.key")] == 0
    assert counts[("write", "config.json")] == 1


async def test_the_network_key_is_kept_in_memory_and_replaced_by_psk_set(node):
    first = node.psk()
    with opens(node.home) as counts:
        for _ in range(5):
            node.psk(), node.crypto_view()
        view = await node.psk_set("ab" * 32)
    assert counts[("read", "network.key")] == 0 and counts[("write", "network.key")] == 1
    assert node.psk() == bytes.fromhex("ab" * 32) != first
    assert node.transport.local.psk == node.psk() and view["network_key"]
    assert not any(name == "config.json" for _, name in counts)   # a key is not a setting


@pytest.mark.parametrize("setting, value", [
    ("discovery_group", "bogus"), ("discovery_group", "10.1.2.3"), ("discovery_port", "0"),
    ("discovery_interval", "-1"), ("discovery_interface", "eth0"), ("discovery", "maybe"),
    ("mode", "strong"), ("listen", "nowhere"), ("proxy_port", "70000")])
def test_a_bad_setting_is_refused_at_load_time_naming_it_and_its_source(tmp_path, monkeypatch,
                                                                         setting, value):
    monkeypatch.setenv("COVEY_" + setting.upper(), value)
    with pytest.raises(BadRequest, match=f"setting {setting}: .*COVEY_{setting.upper()}"):
        load_settings(tmp_path)
    monkeypatch.delenv("COVEY_" + setting.upper())
    (tmp_path / "config.json").write_text(json.dumps({setting: value}))
    with pytest.raises(BadRequest, match=f"setting {setting}: .*config.json"):
        load_settings(tmp_path)


def test_a_bad_discovery_group_stops_the_node_at_open_not_in_start(tmp_path, monkeypatch):
    Identity.generate("bob").save(tmp_path)
    monkeypatch.setenv("COVEY_DISCOVERY_GROUP", "bogus")
    with pytest.raises(BadRequest, match="setting discovery_group"):
        Node.open(tmp_path)
    with pytest.raises(BadRequest, match="setting discovery_group"):
        Settings(discovery_group="bogus")


async def test_the_argument_rules_are_the_cores_so_the_gui_gets_them(node):
    with pytest.raises(BadRequest, match="give MODE together with --min"):
        await node.set_mode(None, "none")
    with pytest.raises(BadRequest, match="64 hex digits"):
        await node.psk_set("not hex")
    with pytest.raises(BadRequest, match="32 bytes"):
        await node.psk_set("abcd")
    with pytest.raises(BadRequest, match="exactly one of"):
        await node.choose_proxy(socks5="127.0.0.1:1080", tor=True)
    with pytest.raises(BadRequest, match="exactly one of"):
        await node.choose_proxy()
    with pytest.raises(BadRequest, match="go with --tor"):
        await node.choose_proxy(socks5="127.0.0.1:1080", tor_control="127.0.0.1:9051")
    with pytest.raises(BadRequest, match="HOST:PORT"):
        await node.choose_proxy(socks5="nowhere")
    view = await node.choose_proxy(socks5="127.0.0.1:1080", user="u", password="p")
    assert (view["mode"], view["port"], view["user"], view["password_set"]) == ("socks5", 1080, "u", True)


async def test_a_refused_change_keeps_the_settings_the_file_and_the_secret(node):
    await node.set_proxy("socks5", "127.0.0.1", 1080, "covey", "s3cret")
    saved = (node.home / "config.json").read_text()
    for bad in (node.set_proxy("bogus", password="other"), node.use_tor(control="no-port"),
                node.set_discovery(group="10.0.0.1"), node.update_settings(max_frame=10)):
        with pytest.raises(BadRequest, match="setting"):
            await bad
    assert (node.home / "config.json").read_text() == saved
    assert (node.home / "proxy.secret").read_text() == "s3cret"
    assert node.proxy_view()["mode"] == "socks5" and node.transport.proxy_password == "s3cret"


async def test_discovery_and_name_changes_apply_live(node):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    view = await node.set_discovery(enabled=True, interface="127.0.0.1", port=port, interval=0.5)
    assert view["enabled"] and view["running"] and node.discovery is not None
    assert node.discovery.interval == 0.5
    assert (await node.set_discovery(enabled=False))["running"] is False and node.discovery is None
    local = node.transport.local
    assert (await node.set_name("alice-2"))["name"] == "alice-2"
    assert node.transport.local is not local and node.transport.local.identity.name == "alice-2"
    assert json.loads((node.home / "config.json").read_text())["name"] == "alice-2"
    with pytest.raises(BadRequest, match="setting name"):
        await node.set_name("x" * 65)
