"""Two or three real nodes connect, authenticate and negotiate their encryption mode."""
from __future__ import annotations

import asyncio

import pytest

from core import events as ev
from core.errors import KeyMismatch, NetworkKeyMismatch, PeerRequiresMode, PeerUnreachable, TimedOut
from core.identity import Identity

from .conftest import address, wait_until


async def test_dial_authenticates_both_sides_and_pins_first_key(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    view = await bob.add_peer(address(alice))
    assert view["id"] == alice.identity.id and view["name"] == "alice"
    assert view["connected"] and view["mode"] == "asymmetric" and view["tier"] == "unknown"
    assert bob.peers.get(alice.identity.id).pinned
    await wait_until(lambda: bob.identity.id in alice.connections, 5)
    assert alice.peer_view(alice.peers.get(bob.identity.id))["connected"]


async def test_request_reply_roundtrip(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    alice.on_message("echo", lambda peer, body: {"echo": body["x"], "from": peer})
    await bob.add_peer(address(alice))
    reply = await bob.request(alice.identity.id, "echo", {"x": b"hello"})
    assert reply == {"echo": b"hello", "from": bob.identity.id}


@pytest.mark.parametrize("mode", ["asymmetric", "symmetric", "none"])
async def test_each_mode_carries_messages(make_node, mode):
    alice, bob = await make_node("alice"), await make_node("bob")
    if mode == "symmetric":
        await alice.psk_set(b"k" * 32)
        await bob.psk_set(b"k" * 32)
    await alice.set_mode(mode)
    await bob.set_mode(mode)
    alice.on_message("echo", lambda peer, body: body)
    view = await bob.add_peer(address(alice))
    assert view["mode"] == mode
    alice.trust(bob.identity.id, "external")  # a stranger may not send alice 5 MB
    big = bytes(range(256)) * 20000  # 5 MB: chunked into several frames
    assert (await bob.request(alice.identity.id, "echo", {"x": big}))["x"] == big


async def test_mode_mismatch_names_what_the_peer_requires(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await alice.psk_set(b"k" * 32)
    await alice.set_mode("symmetric")
    with pytest.raises(PeerRequiresMode, match="requires at least symmetric.*psk import"):
        await bob.add_peer(address(alice))
    assert bob.connections == {} and alice.connections == {}


async def test_stronger_preference_wins_when_both_allow_it(make_node):
    alice = await make_node("alice", mode="none", min_mode="none")
    bob = await make_node("bob")  # asymmetric preferred and required
    view = await bob.add_peer(address(alice))
    assert view["mode"] == "asymmetric"


async def test_our_minimum_above_what_the_peer_offers_is_refused(make_node):
    carol = await make_node("carol", mode="none", min_mode="none")
    bob = await make_node("bob")
    await bob.psk_set(b"q" * 32)
    await bob.set_mode("symmetric")
    with pytest.raises(PeerRequiresMode, match="this node requires at least symmetric"):
        await bob.add_peer(address(carol))


async def test_wrong_network_key_is_refused_with_a_clear_message(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await alice.psk_set(b"a" * 32)
    await bob.psk_set(b"b" * 32)
    await alice.set_mode("symmetric")
    await bob.set_mode("symmetric")
    with pytest.raises(NetworkKeyMismatch, match="same network key"):
        await bob.add_peer(address(alice))


async def test_pinned_key_mismatch_is_refused_as_possible_mitm(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    impostor_key = Identity.generate("x").id
    with pytest.raises(KeyMismatch, match="man in the middle"):
        await bob.transport.dial(address(alice), expected_id=impostor_key)
    assert alice.identity.id not in bob.connections


async def test_pinned_peer_is_kept_connected_and_reconnects_after_restart(make_node, tmp_path):
    alice, bob = await make_node("alice"), await make_node("bob")
    port = alice.transport.port
    await bob.add_peer(address(alice), key=alice.identity.id, name="alice")
    assert alice.identity.id in bob.connections
    await alice.stop()
    await wait_until(lambda: alice.identity.id not in bob.connections, 5)
    # Restart alice on the same port and home: bob's keeper reconnects with backoff.
    from core.node import Node
    from core.config import Settings
    again = Node(alice.home, Identity.load(alice.home), Settings(listen=f"127.0.0.1:{port}", discovery=False))
    await again.start()
    try:
        await wait_until(lambda: alice.identity.id in bob.connections, 10)
        assert bob.peer_view(bob.peers.get(alice.identity.id))["connected"]
    finally:
        await again.stop()


async def test_simultaneous_dials_leave_one_connection(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    results = await asyncio.gather(alice.dial(address(bob)), bob.dial(address(alice)),
                                   return_exceptions=True)
    await asyncio.sleep(0.3)
    assert len(alice.connected_peers()) == 1 and len(bob.connected_peers()) == 1
    a_conn, b_conn = alice.connections[bob.identity.id], bob.connections[alice.identity.id]
    assert a_conn.initiator != b_conn.initiator
    assert not any(isinstance(r, BaseException) and not isinstance(r, PeerUnreachable) for r in results)


async def test_unreachable_address_is_a_clear_error(make_node):
    bob = await make_node("bob", connect_timeout=2.0)
    with pytest.raises(PeerUnreachable, match="could not reach 127.0.0.1:1"):
        await bob.add_peer("127.0.0.1:1")


async def test_trust_ban_unban_remove(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.add_peer(address(alice))
    assert bob.trust("alice", "core")["tier"] == "core"
    banned = await bob.ban("alice")
    assert banned["banned"] and not banned["connected"]
    # A banned peer cannot come back in.
    with pytest.raises(Exception, match="banned"):
        await alice.dial(address(bob))
    assert not bob.unban("alice")["banned"]
    await bob.remove_peer("alice")
    assert bob.list_peers() == []


async def test_bootstrap_list_connects_on_start(make_node):
    alice = await make_node("alice")
    bob = await make_node("bob", bootstrap=[address(alice)])
    await wait_until(lambda: alice.identity.id in bob.connections, 10)
    assert bob.peers.get(alice.identity.id).tier == "unknown"


async def test_a_bootstrap_peer_that_starts_later_is_reached_by_retrying(make_node, caplog):
    """Nodes on k8s start in any order: a bootstrap peer that is not up yet is dialled again with backoff."""
    import logging
    import socket
    with socket.socket() as s:   # a free port nobody listens on yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.INFO, logger="covey.node")
    bob = await make_node("bob", bootstrap=[f"127.0.0.1:{port}"])
    await wait_until(lambda: any(f"127.0.0.1:{port}" in r.getMessage() for r in caplog.records), 10)
    assert not bob.connections   # the first dial failed: nobody was listening
    alice = await make_node("alice", listen=f"127.0.0.1:{port}")
    await wait_until(lambda: alice.identity.id in bob.connections, 20)


async def test_a_request_fails_at_once_when_its_peer_disconnects(make_node):
    """A request to a peer that goes away fails with PeerUnreachable, not after its whole timeout."""
    import asyncio

    from core.errors import PeerUnreachable
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.add_peer(address(alice))
    await wait_until(lambda: bob.identity.id in alice.connections, 10)
    got = asyncio.Event()

    async def never_answers(peer, body):
        got.set()
        await asyncio.sleep(3600)

    bob.on_message("test.slow", never_answers)
    request = asyncio.ensure_future(alice.request(bob.identity.id, "test.slow", {}, timeout=600))
    await asyncio.wait_for(got.wait(), 10)
    await bob.stop()
    with pytest.raises(PeerUnreachable, match="disconnected"):
        await asyncio.wait_for(request, 60)


async def test_event_stream_reports_connect_tier_and_disconnect(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    queue = bob.events.subscribe()
    await bob.add_peer(address(alice))
    bob.trust("alice", "sandbox")
    await bob.ban("alice")
    await wait_until(lambda: alice.identity.id not in bob.connections, 5)
    names = []
    while not queue.empty():
        event = queue.get_nowait()
        names.append(event.name)
        assert event.data.get("peer") in (None, alice.identity.id)
    for expected in (ev.PEER_CONNECTED, ev.PEER_ADDED, ev.TIER_CHANGED, ev.PEER_BANNED, ev.PEER_DISCONNECTED):
        assert expected in names
    assert names.index(ev.TIER_CHANGED) < names.index(ev.PEER_BANNED)


async def test_the_users_name_for_a_peer_survives_reconnects(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.add_peer(address(alice), key=alice.identity.id, name="my-laptop")
    await bob.connections[alice.identity.id].close()
    await wait_until(lambda: alice.identity.id in bob.connections and not bob.connections[alice.identity.id].closed, 10)
    assert bob.peers.get(alice.identity.id).name == "my-laptop"


async def test_an_automatic_ban_at_the_reputation_threshold_disconnects(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await bob.add_peer(address(alice))
    for _ in range(3):  # 0.5 -> 0.2: banned
        bob.peers.record_outcome(alice.identity.id, accepted=False, reason="bad update")
    assert bob.peers.get(alice.identity.id).banned
    await wait_until(lambda: alice.identity.id not in bob.connections, 5)


async def test_a_request_nobody_answers_times_out_with_a_clear_error(make_node):
    from core.errors import TimedOut
    alice, bob = await make_node("alice"), await make_node("bob")
    alice.on_message("silent", lambda peer, body: None)  # handled, never answered
    await bob.add_peer(address(alice))
    with pytest.raises(TimedOut, match="silent to .* got no answer within 0.3 s"):
        await bob.request(alice.identity.id, "silent", {}, timeout=0.3)
    assert bob._pending == {} and bob._deadlines == {}
    assert (await bob.request(alice.identity.id, "ping", {}))["pong"]
