"""Bad input from the network: each gets a clear error, the node keeps serving its other peers."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from core.net import wire
from core.net.handshake import LocalEndpoint, NoiseHandshake, make_hello, parse_choice
from core.identity import Identity

from .conftest import address, wait_until


class RawPeer:
    """A hand-driven client that can complete the handshake and then misbehave."""

    def __init__(self, session: aiohttp.ClientSession, target: str):
        self.session, self.target = session, target
        self.identity = Identity.generate("raw")

    async def open(self, max_msg_size: int = 8 << 20, **ws_options):
        self.ws = await self.session.ws_connect(f"http://{self.target}{wire.WS_PATH}",
                                                max_msg_size=max_msg_size, **ws_options)
        return self.ws

    async def handshake(self, local: LocalEndpoint | None = None, **ws_options):
        local = local or LocalEndpoint.create(self.identity, "asymmetric", "asymmetric", None)
        ws = await self.open(**ws_options)
        hello = make_hello(local)
        await ws.send_bytes(hello)
        choice = (await ws.receive()).data
        mode = parse_choice(choice, local)
        hs = NoiseHandshake(local, mode, True, hello, choice)
        await ws.send_bytes(hs.initiator_step1())
        await ws.send_bytes(hs.initiator_step2((await ws.receive()).data))
        self.channel = hs.channel()
        ready = self.channel.open((await ws.receive()).data)
        assert wire.decode(ready[1:], 1 << 20).type == "ready"
        return ws

    def seal(self, msg: wire.Message) -> bytes:
        return self.channel.seal(b"\x00" + wire.encode(msg))

    async def receive_message(self) -> wire.Message:
        frame = await self.ws.receive()
        assert frame.type == aiohttp.WSMsgType.BINARY, frame
        return wire.decode(self.channel.open(frame.data)[1:], 1 << 20)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def pair(make_node):
    """alice serves; bob is a well-behaved connected peer whose service must not suffer."""
    alice, bob = await make_node("alice"), await make_node("bob")
    alice.on_message("echo", lambda peer, body: body)
    await bob.add_peer(address(alice))
    return alice, bob


async def still_serves(alice, bob) -> None:
    assert (await bob.request(alice.identity.id, "echo", {"ok": 1}, timeout=5)) == {"ok": 1}


async def test_malformed_frame_closes_only_that_connection(pair, session):
    alice, bob = pair
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    await ws.send_bytes(b"\x00garbage that is not a sealed frame")
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and "authentication" in closing.extra
    await still_serves(alice, bob)


async def test_garbage_before_handshake_gets_a_clear_refusal(pair, session):
    alice, bob = pair
    ws = await RawPeer(session, address(alice)).open()
    await ws.send_bytes(b"\xc1\xc1 definitely not msgpack")
    reply = await ws.receive()
    assert wire.unpack_plain(reply.data)["error"] == "malformed"
    await still_serves(alice, bob)


async def test_oversized_frame_is_refused(pair, session):
    alice, bob = pair
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    await ws.send_bytes(b"x" * (alice.settings.max_frame + 1024))
    closing = await ws.receive()
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1009  # "message too big"
    await still_serves(alice, bob)


async def test_oversized_chunked_message_is_refused(make_node, session):
    alice = await make_node("alice", max_message=1 << 20, max_frame=64 << 10)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    chunk = b"\x01" + b"y" * (60 << 10)
    for _ in range(20):  # 1.2 MB in parts, over the 1 MiB message cap
        if ws.closed:
            break
        await ws.send_bytes(raw.channel.seal(chunk))
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and "exceeds the limit" in closing.extra


async def test_wrong_protocol_version_is_named(pair, session):
    alice, bob = pair
    ws = await RawPeer(session, address(alice)).open()
    await ws.send_bytes(wire.pack_plain({"proto": "covey", "v": 99, "modes": ["asymmetric"],
                                         "pref": "asymmetric", "min": "asymmetric", "port": 0}))
    reply = wire.unpack_plain((await ws.receive()).data)
    assert reply["error"] == "unsupported_version" and "version 99" in reply["message"]
    await still_serves(alice, bob)


async def test_handshake_with_bad_identity_signature_is_refused(pair, session):
    alice, bob = pair
    raw = RawPeer(session, address(alice))
    local = LocalEndpoint.create(raw.identity, "asymmetric", "asymmetric", None)
    payload = wire.unpack_plain(local.static_payload)
    payload["sig"] = bytes(64)  # signature over the static key that does not verify
    local.static_payload = wire.pack_plain(payload)
    ws = await raw.open()
    hello = make_hello(local)
    await ws.send_bytes(hello)
    choice = (await ws.receive()).data
    hs = NoiseHandshake(local, parse_choice(choice, local), True, hello, choice)
    await ws.send_bytes(hs.initiator_step1())
    await ws.send_bytes(hs.initiator_step2((await ws.receive()).data))
    reply = wire.unpack_plain((await ws.receive()).data)
    assert reply["error"] == "invalid_signature"
    assert raw.identity.id not in alice.connections
    await still_serves(alice, bob)


async def test_replayed_frame_is_rejected(pair, session):
    alice, bob = pair
    alice.on_message("note", lambda peer, body: None)
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    frame = raw.seal(wire.Message("note", {"n": 1}))
    await ws.send_bytes(frame)
    await ws.send_bytes(frame)  # the same sealed frame again: a replay
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and "replayed" in closing.extra
    await still_serves(alice, bob)


async def test_unknown_message_type_gets_an_error_and_the_connection_stays(pair, session):
    alice, bob = pair
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    await ws.send_bytes(raw.seal(wire.Message("no.such.type", {}, id=7)))
    reply = await raw.receive_message()
    assert reply.type == "error" and reply.reply_to == 7 and reply.body["code"] == "unknown_type"
    await ws.send_bytes(raw.seal(wire.Message("echo", {"still": "here"}, id=8)))
    assert (await raw.receive_message()).body == {"still": "here"}


async def test_malformed_message_body_gets_an_error_reply(pair, session):
    alice, bob = pair
    raw = RawPeer(session, address(alice))
    ws = await raw.handshake()
    await ws.send_bytes(raw.channel.seal(b"\x00" + wire.pack_plain({"t": "echo", "i": "x"})))
    reply = await raw.receive_message()
    assert reply.type == "error" and reply.body["code"] == "malformed"
    await still_serves(alice, bob)


async def test_hundreds_of_connections_at_once_are_bounded(pair, session):
    alice, bob = pair

    async def attempt():
        try:
            ws = await session.ws_connect(f"http://{address(alice)}{wire.WS_PATH}")
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        return ws

    results = await asyncio.gather(*(attempt() for _ in range(300)))
    opened = [r for r in results if not isinstance(r, int)]
    refused = [r for r in results if r == 503]
    assert refused and len(opened) <= alice.settings.max_handshakes
    await still_serves(alice, bob)  # the connected peer is served during the flood
    for ws in opened:
        await ws.close()
    await wait_until(lambda: alice.transport._in_flight == 0, 10)


async def test_unknown_peers_are_rate_limited_per_address(make_node, session):
    alice = await make_node("alice", unknown_per_minute=3)
    accepted = refused = 0
    for _ in range(5):
        raw = RawPeer(session, address(alice))
        try:
            ws = await raw.handshake()
            accepted += 1
            await ws.close()
        except AssertionError:
            refused += 1
    assert accepted == 3 and refused == 2
