"""A node gives back every file it opened: its database, listening and peer sockets, LAN
discovery's sockets (the whole test suite runs in one process, and so does a long-lived app)."""
from __future__ import annotations

from tests.beacons import free_udp_port
from tests.open_files import open_files

from .conftest import address, wait_until


async def test_starting_and_stopping_a_node_20_times_leaves_the_open_files_unchanged(make_node):
    group_port = free_udp_port()

    async def one_round(name: str) -> None:
        node = await make_node(name, discovery=True, discovery_port=group_port, discovery_interface="127.0.0.1")
        assert node.discovery is not None and node.store is not None
        await node.stop()

    await one_round("first")   # what a process opens once (imports, the resolver) is not counted
    before = open_files()
    for i in range(20):
        await one_round(f"n{i}")
    assert open_files() == before


async def test_two_nodes_that_talked_leave_the_open_files_unchanged_once_stopped(make_node):
    async def one_round(i: int) -> None:
        alice, bob = await make_node(f"alice{i}"), await make_node(f"bob{i}")
        alice.on_message("echo", lambda peer, body: {"echo": body["x"]})
        await bob.add_peer(address(alice))
        await wait_until(lambda: bob.identity.id in alice.connections)
        assert await bob.request(alice.identity.id, "echo", {"x": i}) == {"echo": i}
        await bob.stop()
        await alice.stop()

    await one_round(0)
    before = open_files()
    for i in range(1, 6):
        await one_round(i)
    assert open_files() == before
