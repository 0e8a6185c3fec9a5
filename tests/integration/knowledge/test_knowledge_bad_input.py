"""Bad knowledge through the wire: each refused with a clear reason, the node keeps serving.

Mallory is a real node that A trusts as CORE (so policy lets its messages
through to the intake checks) and that sends what an honest node never would:
hand-made know.* bodies, and lying answers from replaced handlers.
"""
from __future__ import annotations

import pytest

from core import signed
from core.errors import InvalidSignature, MalformedMessage, MessageTooLarge
from core.identity import Identity
from core.knowledge import protocol as proto
from core.knowledge.protocol import Equivocation

from ..conftest import wait_until
from .conftest import counters, kn, link, settle


@pytest.fixture
async def trio(fed):
    """a serves; b is an honest CORE peer; m (mallory) is CORE at a too."""
    a, b, m = await fed.start("a"), await fed.start("b"), await fed.start("m")
    await link(b, a, "core", "core")
    await link(m, a, "core", "core")
    await settle(a, b, m)
    return a, b, m


async def still_serves(a, b) -> None:
    """b still gets a's new packets and answers from a."""
    packet = await kn(a).publish(text="still here")
    await wait_until(lambda: kn(b).db.has(packet["id"]))
    found = await kn(b).query(a.identity.id)
    assert packet["id"] in {p["id"] for p in found["packets"]}


def push(packet: proto.Packet, hops: int = 1, pid: str | None = None) -> dict:
    return {"id": pid or packet.id, "packet": packet.raw, "hops": hops}


def reputation(a, m) -> float:
    return a.peers.get(m.identity.id).reputation


async def test_forged_author_is_refused_as_an_invalid_signature(trio):
    a, b, m = trio
    envelope = signed.seal(Identity.load(m.home), proto.KIND, proto.make_body(1, text="I am b"))
    envelope["signer"] = b.identity.id       # claims b wrote it; the signature is mallory's
    raw = signed.canonical(envelope)
    with pytest.raises(InvalidSignature, match="invalid_signature"):
        await m.request(a.identity.id, "know.push", {"id": proto.packet_id(raw), "packet": raw, "hops": 1})
    assert not kn(a).db.has(proto.packet_id(raw))
    assert counters(a, m)["rejected"] == {"invalid_signature": 1}
    assert reputation(a, m) < 0.5 and b.identity.id not in kn(a).engine.have()["have"]
    await still_serves(a, b)


async def test_an_id_that_does_not_match_the_bytes_is_refused(trio):
    a, b, m = trio
    packet = proto.create(Identity.load(m.home), 1, text="honest bytes")
    with pytest.raises(MalformedMessage, match="id_mismatch.*does not match its bytes"):
        await m.request(a.identity.id, "know.push", push(packet, pid="0" * 64))
    assert not kn(a).db.has(packet.id) and counters(a, m)["rejected"] == {"id_mismatch": 1}
    await still_serves(a, b)


async def test_a_replayed_packet_is_a_duplicate_and_goes_nowhere_twice(trio):
    a, b, m = trio
    packet = proto.create(Identity.load(m.home), 1, text="said once")
    first = await m.request(a.identity.id, "know.push", push(packet))
    assert first["status"] == "accepted"
    await wait_until(lambda: kn(b).db.has(packet.id))      # forwarded to b once
    await settle(a, b, m)
    b_before = counters(b)
    again = await m.request(a.identity.id, "know.push", push(packet))
    assert again == {"ok": True, "status": "duplicate", "message": "seen recently"}
    # the same author and seq with other bytes: equivocation, refused and the first one kept
    forked = proto.create(Identity.load(m.home), 1, text="said differently")
    with pytest.raises(Equivocation, match="two packets with seq 1"):
        await m.request(a.identity.id, "know.push", push(forked))
    await settle(a, b, m)
    assert counters(b) == b_before                          # nothing reached b again
    assert kn(a).db.count == 1 and counters(a, m)["duplicates"] == 1
    assert counters(a, m)["rejected"] == {"equivocation": 1}
    await still_serves(a, b)


async def test_a_sequence_gap_that_is_never_filled_ends_the_pull_and_is_not_advertised(trio):
    a, b, m = trio
    mallory = Identity.load(m.home)
    packets = {seq: proto.create(mallory, seq, text=f"seq {seq}") for seq in (1, 2, 4, 5)}
    for seq in (1, 2, 4):
        await m.request(a.identity.id, "know.push", push(packets[seq]))
    # mallory claims to hold 1..4 contiguously but never delivers 3, and answers the pull with 5, unasked
    m.on_message("know.have", lambda peer, body: {"have": {mallory.id: 4}})
    m.on_message("know.want", lambda peer, body: proto.reply_body([push(packets[5], 1)], False))
    assert await kn(a).sync(m.identity.id) == 0             # ends: nothing it asked for came
    assert counters(a, m)["rejected"] == {"unsolicited": 1}
    assert kn(a).engine.have()["have"][mallory.id] == 2     # a advertises only what it holds in order
    assert not kn(a).db.holds(mallory.id, 3) and not kn(a).db.holds(mallory.id, 5)
    assert [p["seq"] for p in kn(a).list(author=mallory.id)] == [4, 2, 1]
    # b got what a accepted (live path), and it too advertises only up to the gap
    await wait_until(lambda: all(kn(b).db.holds(mallory.id, seq) for seq in (1, 2, 4)))
    assert kn(b).engine.have()["have"][mallory.id] == 2
    await still_serves(a, b)


async def test_an_oversized_packet_is_refused_before_it_is_decoded(trio):
    a, b, m = trio
    body = {"id": "1" * 64, "packet": b"\x00" * (proto.MAX_PACKET_BYTES + 1), "hops": 1}
    with pytest.raises(MessageTooLarge, match="too_large.*above"):
        await m.request(a.identity.id, "know.push", body, timeout=60)
    assert counters(a, m)["rejected"] == {"too_large": 1}
    await still_serves(a, b)


async def test_repeated_faults_ban_the_peer_and_the_others_are_still_served(trio):
    a, b, m = trio
    mallory = Identity.load(m.home)
    for n in range(3):
        packet = proto.create(mallory, n + 1, text=f"bad {n}")
        with pytest.raises(MalformedMessage):
            await m.request(a.identity.id, "know.push", push(packet, pid=f"{n}" * 64))
    await wait_until(lambda: a.peers.get(m.identity.id).banned)
    await wait_until(lambda: m.identity.id not in a.connections)
    assert counters(a, m)["rejected"] == {"id_mismatch": 3}
    await still_serves(a, b)
