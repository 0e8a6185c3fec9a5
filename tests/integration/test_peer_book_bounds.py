"""The peer book stays bounded and keeps only what the user chose (issue 6, finding 8).

Strangers that connect become UNKNOWN rows that are capped and never redialled; LAN
beacons stay in memory; neither a beacon nor an inbound connection moves the address
of a peer the user added; over tor the hello announces no listen port.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from core.config import Settings
from core.net.discovery import DEFAULT_GROUP, encode_beacon
from core.net.handshake import LocalEndpoint
from core.identity import Identity
from core.node import Node

from tests.beacons import beacon_sender, free_udp_port

from .conftest import address, wait_until
from .test_bad_input import RawPeer
from .test_socks5 import socks_proxy  # noqa: F401  (fixture: a real microsocks on 127.0.0.1)

QUIET = 2.0  # seconds we watch for dials that must not come (keepers retry after 0.05-0.5 s)


class Bait:
    """A TCP port that counts every connection made to it (and drops each at once)."""

    def __init__(self):
        self.dials = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer) -> None:
        self.dials += 1
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def bait():
    b = Bait()
    b.port = await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def connect_strangers(node: Node, session, count: int, listen_port: int) -> None:
    """``count`` throwaway identities complete the handshake, announcing ``listen_port``, then leave."""
    for _ in range(count):
        raw = RawPeer(session, address(node))
        local = LocalEndpoint.create(raw.identity, "asymmetric", "asymmetric", None, listen_port=listen_port)
        ws = await raw.handshake(local)
        await wait_until(lambda: raw.identity.id in node.connections)
        await ws.close()


async def test_inbound_strangers_are_capped_and_never_dialled_even_after_restart(
        make_node, session, bait, tmp_path):
    alice = await make_node("alice", max_unknown_peers=8, unknown_per_minute=1000)
    await connect_strangers(alice, session, 20, bait.port)
    await wait_until(lambda: not alice.connections)
    assert len(alice.peers.list()) == 8          # the cap, not 20
    assert all(not r.kept for r in alice.peers.list())
    await asyncio.sleep(QUIET)
    assert bait.dials == 0 and alice._keepers == {}

    home, port = alice.home, alice.transport.port
    await alice.stop()
    again = Node(home, Identity.load(home), Settings(listen=f"127.0.0.1:{port}", discovery=False,
                                                    max_unknown_peers=8))
    await again.start()
    try:
        await asyncio.sleep(QUIET)
        assert bait.dials == 0 and again._keepers == {}
        assert len(again.peers.list()) == 8
    finally:
        await again.stop()


async def test_strangers_never_evict_the_peers_the_user_added(make_node, session, bait):
    alice = await make_node("alice", max_unknown_peers=4, unknown_per_minute=1000)
    bob = await make_node("bob")
    await alice.add_peer(address(bob))
    await connect_strangers(alice, session, 10, bait.port)
    rows = {r.id: r for r in alice.peers.list()}
    assert bob.identity.id in rows and rows[bob.identity.id].kept
    assert sum(1 for r in rows.values() if not r.kept) == 4
    assert alice.identity.id in bob.connections   # still kept connected


async def test_a_beacon_flood_stays_in_memory_and_is_never_redialled(make_node, bait):
    group_port = free_udp_port()
    alice = await make_node("alice", discovery=True, discovery_port=group_port,
                            discovery_interface="127.0.0.1", discovery_interval=2.0)
    assert alice.discovery is not None
    # Discovery takes 64 beacons per interval from one host (its own included): a flood of 50
    # fits in one window. (Before the fix each one became a permanent row and a keeper.)
    senders = [beacon_sender() for _ in range(25)]   # 25 source ports: each may send 4 per interval
    forged = [Identity.generate(f"forged-{i}") for i in range(50)]
    try:
        for i, identity in enumerate(forged):
            senders[i % len(senders)].sendto(encode_beacon(identity, bait.port), (DEFAULT_GROUP, group_port))
        await wait_until(lambda: len(alice.discovery.peers()) == len(forged))
        listed = alice.list_peers()
        assert {p["id"] for p in listed} == {i.id for i in forged}   # shown as discovered ...
        assert all(p["discovered"] and p["source"] == "lan" and p["tier"] == "unknown" for p in listed)
        assert alice.peers.list() == []                               # ... but not one row written
        await wait_until(lambda: not alice._lan_dials)
        dialled = bait.dials
        assert dialled <= len(forged)            # at most one session dial per discovery
        await asyncio.sleep(QUIET)
        assert bait.dials == dialled and alice._keepers == {}
    finally:
        for sock in senders:
            sock.close()


async def test_trusting_a_discovered_peer_adds_it_to_the_book_and_keeps_it(make_node, bait):
    group_port = free_udp_port()
    alice = await make_node("alice", discovery=True, discovery_port=group_port,
                            discovery_interface="127.0.0.1", discovery_interval=0.5)
    bob = await make_node("bob")
    sock = beacon_sender()
    try:
        sock.sendto(encode_beacon(bob.identity, bob.transport.port), (DEFAULT_GROUP, group_port))
        await wait_until(lambda: bob.identity.id in alice.connections)  # the session dial
        row = alice.peers.get(bob.identity.id)
        assert row is not None and not row.kept and bob.identity.id not in alice._keepers
        view = alice.trust(bob.identity.id[:8], "sandbox")
        assert view["tier"] == "sandbox" and view["kept"]
        assert alice.peers.get(bob.identity.id).address == address(bob)
        assert bob.identity.id in alice._keepers
    finally:
        sock.close()


async def test_a_beacon_never_moves_a_peer_added_by_hand(make_node, bait):
    group_port = free_udp_port()
    alice = await make_node("alice", discovery=True, discovery_port=group_port,
                            discovery_interface="127.0.0.1", discovery_interval=0.5)
    bob = await make_node("bob")
    await alice.add_peer(address(bob), key=bob.identity.id)
    sock = beacon_sender()
    try:
        # bob's own, validly signed beacon, replayed from another port of the LAN pointing at the bait
        sock.sendto(encode_beacon(bob.identity, bait.port), (DEFAULT_GROUP, group_port))
        await wait_until(lambda: [b.id for b in alice.discovery.peers()] == [bob.identity.id])
        await wait_until(lambda: not alice._lan_dials)
        assert alice.peers.get(bob.identity.id).address == address(bob)
        assert bob.identity.id in alice.connections
    finally:
        sock.close()


async def test_an_inbound_connection_never_replaces_a_pinned_onion_address(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    onion = "a" * 56 + ".onion:8102"
    await alice.add_peer(onion, key=bob.identity.id, name="bob")
    await bob.add_peer(address(alice))          # bob dials in (over tor it would come from 127.0.0.1)
    await wait_until(lambda: bob.identity.id in alice.connections)
    assert alice.peers.get(bob.identity.id).address == onion


async def test_over_tor_the_hello_announces_no_listen_port(make_node, socks_proxy):  # noqa: F811
    alice, carol = await make_node("alice"), await make_node("carol")
    # carol routes through "tor" (here a SOCKS port used as tor's, as `proxy set --socks5` would)
    await carol.set_proxy("tor", "127.0.0.1", socks_proxy, "covey", "s3cret")
    assert carol.route.via_tor
    await carol.add_peer(address(alice))
    await wait_until(lambda: carol.identity.id in alice.connections)
    assert alice.connections[carol.identity.id].listen_port == 0
    assert alice.peers.get(carol.identity.id).address is None
