"""In symmetric mode a client without the network key learns nothing about the node (issue 6, 12a).

The responder checks the key (psk0) before it speaks, so neither its id nor its name
ever reaches a client that does not hold the key, in clear or under a key it can derive.
"""
from __future__ import annotations

import aiohttp
import pytest

from core.net import wire
from core.errors import CoveyError, NetworkKeyMismatch
from core.net.handshake import LocalEndpoint, NoiseHandshake, make_hello, parse_choice
from core.identity import Identity

from .conftest import address

NAME = "alice-the-secret-name"


@pytest.fixture
async def alice(make_node):
    node = await make_node(NAME)
    await node.psk_set(b"k" * 32)
    await node.set_mode("symmetric")
    return node


def leaks(node, received: list[bytes]) -> list[str]:
    """Which of the node's identifying values appear in the bytes a client received."""
    blob = b"".join(received)
    found = []
    for label, value in (("id (raw)", node.identity.public_bytes), ("id (hex)", node.identity.id.encode()),
                         ("name", NAME.encode())):
        if value in blob:
            found.append(label)
    return found


async def test_a_client_with_a_wrong_key_learns_neither_id_nor_name(alice):
    intruder = LocalEndpoint.create(Identity.generate("intruder"), "symmetric", "symmetric", b"w" * 32)
    received: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://{address(alice)}{wire.WS_PATH}")
        hello = make_hello(intruder)
        await ws.send_bytes(hello)
        choice = (await ws.receive()).data
        received.append(choice)
        hs = NoiseHandshake(intruder, parse_choice(choice, intruder), True, hello, choice)
        await ws.send_bytes(hs.initiator_step1())
        async for frame in ws:            # everything the node sends until it closes
            if frame.type == aiohttp.WSMsgType.BINARY:
                received.append(frame.data)
        if ws.close_code is not None:
            received.append(str(ws.close_code).encode())

    msg2 = received[1] if len(received) > 1 else b""
    # The intruder runs its side of the handshake on what came back: with psk3 this decrypted
    # the responder's static key and identity payload; now it is a refusal, not message 2.
    with pytest.raises(CoveyError) as refused:
        hs.initiator_step2(msg2)
    assert isinstance(refused.value, NetworkKeyMismatch)
    assert hs.peer_id is None and hs.peer_name == ""
    assert leaks(alice, received) == []


async def test_a_client_with_no_key_at_all_learns_neither_id_nor_name(alice):
    stranger = LocalEndpoint.create(Identity.generate("stranger"), "asymmetric", "asymmetric", None)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://{address(alice)}{wire.WS_PATH}")
        await ws.send_bytes(make_hello(stranger))
        received = [frame.data for frame in [await ws.receive()] if frame.type == aiohttp.WSMsgType.BINARY]
        await ws.close()
    assert wire.unpack_plain(received[0])["error"] == "mode_mismatch"
    assert leaks(alice, received) == []


async def test_holders_of_the_key_still_connect(alice, make_node):
    bob = await make_node("bob")
    await bob.psk_set(b"k" * 32)
    await bob.set_mode("symmetric")
    view = await bob.add_peer(address(alice))
    assert view["mode"] == "symmetric" and view["name"] == NAME
