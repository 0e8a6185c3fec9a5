"""Real tor daemons on a private network: onion services, SOCKS dialing, fail-closed.

Run inside a loopback-only namespace (the conftest skips these tests elsewhere):
``unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest -q -m tor tests/integration/tor'``
"""
from __future__ import annotations

import asyncio
import socket

import psutil
import pytest

from core.errors import CorruptKeyFile, CoveyError, ProxyUnreachable, RateLimited, TimedOut
from core.net.tor import TorController, TorError

from ..conftest import address

pytestmark = [pytest.mark.tor, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")]  # inside stem 1.8

BOOTSTRAP_TIMEOUT = 60.0
ONION_REACH_TIMEOUT = 90.0


@pytest.fixture
async def tors(tmp_path):
    """``await tors(home, **kwargs)`` -> a started TorController; every one is stopped at the end."""
    started: list[TorController] = []

    async def factory(home, **kwargs) -> TorController:
        home.mkdir(parents=True, exist_ok=True)
        tor = TorController(home, **kwargs)
        started.append(tor)
        await tor.start()
        return tor

    yield factory
    for tor in started:
        await tor.stop()


async def owned_tor(tors, home, network_torrc, **kwargs) -> TorController:
    tor = await tors(home, network_config=network_torrc, **kwargs)
    await tor.wait_bootstrapped(BOOTSTRAP_TIMEOUT)
    return tor


async def attached_tor(tors, home, running_tor) -> TorController:
    tor = await tors(home, control=f"127.0.0.1:{running_tor.control_port}")
    await tor.wait_bootstrapped(BOOTSTRAP_TIMEOUT)
    return tor


async def add_peer_through_tor(node, onion_address: str, timeout: float = ONION_REACH_TIMEOUT) -> dict:
    """Dial an onion address, retrying while its descriptor is still spreading through the HSDirs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await node.add_peer(onion_address)
        except CoveyError as exc:
            if isinstance(exc, ProxyUnreachable) or loop.time() > deadline:
                raise
            await asyncio.sleep(1.0)


def tor_processes_using(torrc) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(torrc) in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


# -- starting tor safely ---------------------------------------------------------------------

async def test_an_owned_tor_is_refused_without_a_network_config(tmp_path):
    tor = TorController(tmp_path / "alice")
    with pytest.raises(TorError, match="refusing to start tor without a network config"):
        await tor.start()
    assert not (tmp_path / "alice" / "tor" / "torrc").exists()
    assert not tor.running


async def test_an_owned_tor_is_refused_with_a_config_that_names_no_directory_authority(tmp_path):
    config = tmp_path / "public.torrc"
    config.write_text("ClientUseIPv6 0\n")
    tor = TorController(tmp_path / "alice", network_config=config)
    with pytest.raises(TorError, match="no DirAuthority lines"):
        await tor.start()
    assert not (tmp_path / "alice" / "tor" / "torrc").exists()


async def test_attaching_to_a_closed_control_port_says_what_is_wrong(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tor = TorController(tmp_path / "alice", control=f"127.0.0.1:{port}")
    with pytest.raises(TorError, match=f"cannot reach tor's control port at 127.0.0.1:{port}"):
        await tor.start()
    assert not tor.running


# -- bootstrap, status, stop -------------------------------------------------------------------

async def test_bootstrap_progress_is_reported_up_to_100(tors, tmp_path, network_torrc):
    seen: list[dict] = []
    tor = await owned_tor(tors, tmp_path / "alice", network_torrc, on_status=seen.append)
    progress = [s["bootstrap"] for s in seen]
    assert progress[-1] == 100 and seen[-1]["running"]
    assert progress == sorted(progress)
    assert all(isinstance(s["summary"], str) and s["summary"] for s in seen)
    status = tor.status()
    assert status["owned"] and status["running"] and status["bootstrap"] == 100
    assert status["socks"] == f"{tor.socks[0]}:{tor.socks[1]}" and tor.socks[0] == "127.0.0.1"
    socket.create_connection(tor.socks, 5).close()  # tor really listens there
    assert (tmp_path / "alice" / "tor" / "torrc").stat().st_mode & 0o077 == 0


async def test_stop_leaves_no_tor_process(tors, tmp_path, network_torrc):
    seen: list[dict] = []
    tor = await owned_tor(tors, tmp_path / "alice", network_torrc, on_status=seen.append)
    torrc = tmp_path / "alice" / "tor" / "torrc"
    pid = tor.pid
    assert [p.pid for p in tor_processes_using(torrc)] == [pid]
    await tor.stop()
    assert tor_processes_using(torrc) == [] and not psutil.pid_exists(pid)
    assert not tor.status()["running"] and seen[-1]["running"] is False
    await tor.stop()  # idempotent


async def test_a_tor_that_cannot_bootstrap_fails_closed(tors, tmp_path, tor_network):
    config = tor_network.write_unreachable_config(tmp_path / "unreachable.torrc")
    tor = await tors(tmp_path / "alice", network_config=config)
    with pytest.raises(TimedOut, match="did not finish bootstrapping"):
        await tor.wait_bootstrapped(1.0)
    with pytest.raises(ProxyUnreachable, match="tor is still bootstrapping.*fail closed"):
        tor.check_ready()


# -- onion service and SOCKS ---------------------------------------------------------------------

async def test_peers_meet_through_an_onion_service(make_node, tors, tmp_path, network_torrc, running_tor,
                                                   tor_network):
    alice = await make_node("alice")
    bob = await make_node("bob", connect_timeout=60.0)
    alice_tor = await owned_tor(tors, tmp_path / "alice-tor", network_torrc)
    onion = await alice_tor.publish(alice.transport.port)
    assert onion.endswith(".onion") and len(onion) == 62 and alice_tor.status()["onion"] == onion
    bob_tor = await attached_tor(tors, tmp_path / "bob-tor", running_tor)
    assert not bob_tor.owned and bob_tor.socks == ("127.0.0.1", running_tor.socks_port)
    await bob.set_proxy("tor", *bob_tor.socks)

    peer = await add_peer_through_tor(bob, f"{onion}:8102")

    assert peer["connected"] and peer["id"] == alice.identity.id and peer["address"] == f"{onion}:8102"
    assert await bob.request(alice.identity.id, "ping", {}) == {"pong": True}
    assert bob.identity.id in alice.connections
    circuits = await bob_tor.circuits()
    built = [c for c in circuits if c["status"] == "BUILT"]
    assert built and bob_tor.status()["circuits"] >= 1
    hops = {hop["fingerprint"] for c in built for hop in c["path"]}
    assert hops <= tor_network.fingerprints()  # every hop is a relay of the private network


async def test_onion_address_is_stable_across_restarts(tors, tmp_path, network_torrc):
    home = tmp_path / "alice"
    first = await owned_tor(tors, home, network_torrc)
    onion = await first.publish(18102)
    key_file = home / "tor" / "onion.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().startswith("ED25519-V3:")
    await first.stop()
    assert first.onion is None

    second = await owned_tor(tors, home, network_torrc)
    assert await second.publish(18102) == onion


async def test_a_corrupt_onion_key_is_refused_not_replaced(tors, tmp_path, running_tor):
    home = tmp_path / "alice"
    (home / "tor").mkdir(parents=True)
    (home / "tor" / "onion.key").write_text("ED25519-V3:not base64!\n")
    tor = await attached_tor(tors, home, running_tor)
    with pytest.raises(CorruptKeyFile, match="move it aside"):
        await tor.publish(18102)
    assert (home / "tor" / "onion.key").read_text() == "ED25519-V3:not base64!\n"


async def test_new_identity_is_sent_and_then_rate_limited(tors, tmp_path, running_tor):
    tor = await attached_tor(tors, tmp_path / "bob", running_tor)
    result = await tor.new_identity()
    assert result["ok"] and result["next_in"] > 0
    with pytest.raises(RateLimited, match="once every 10 s"):
        await tor.new_identity()


async def test_dial_fails_closed_when_the_client_tor_is_stopped(make_node, tors, tmp_path, network_torrc):
    alice = await make_node("alice")
    bob = await make_node("bob")
    bob_tor = await owned_tor(tors, tmp_path / "bob-tor", network_torrc)
    await bob.set_proxy("tor", *bob_tor.socks)
    await bob_tor.stop()

    with pytest.raises(ProxyUnreachable, match="tor is not running.*fail closed"):
        bob_tor.check_ready()
    # alice is reachable directly on loopback: only a leak could connect.
    with pytest.raises(ProxyUnreachable, match=r"the tor proxy at 127\.0\.0\.1:\d+ is unreachable.*fail closed"):
        await bob.add_peer(address(alice))
    assert bob.connections == {} and alice.connections == {}
