"""A federation with every tier shows exactly the propagation rules of DESIGN section 2.

The hub A knows B and C as CORE, S as SANDBOX, E as EXTERNAL; U is a stranger
(UNKNOWN at A). Every spoke trusts A as CORE, so whatever a spoke does not get
is A's decision. B and C are not linked to each other: what C gets from B went
through A.
"""
from __future__ import annotations

import pytest

from core.errors import RefusedByPolicy
from core.knowledge import protocol as proto

from ..conftest import wait_until
from .conftest import counters, kn, link, settle


@pytest.fixture
async def star(fed):
    hub = await fed.start("a")
    nodes = {"a": hub}
    for name, tier in (("b", "core"), ("c", "core"), ("s", "sandbox"), ("e", "external"), ("u", None)):
        nodes[name] = await fed.start(name)
        await link(nodes[name], hub, "core", tier)
    await settle(*nodes.values())
    return nodes


def holds(node, packet_id: str) -> bool:
    return kn(node).db.has(packet_id)


async def test_core_packets_are_accepted_and_forwarded_to_other_core_peers_only(star):
    a, b, c, s, e, u = (star[n] for n in "abcseu")
    packet = await kn(b).publish(text="from b", title="b's note", tags=["shared"])
    await wait_until(lambda: holds(c, packet["id"]))      # C is linked to A only: A forwarded it
    await settle(*star.values())
    row = kn(a).db.get(packet["id"]).summary
    assert row["relay"] and row["tier"] == "core" and row["received_from"] == b.identity.id
    assert kn(c).db.get(packet["id"]).summary["received_from"] == a.identity.id
    # never back to where it came from, never to SANDBOX / EXTERNAL / UNKNOWN peers
    for peer in (b, s, e, u):
        assert counters(a, peer)["sent"] == 0, peer.identity.name
    for peer in (s, e, u):
        assert not holds(peer, packet["id"])
    # C got it once: the announcement, then one pull
    assert counters(c)["accepted"] == 1 and counters(c)["duplicates"] == 0


async def test_our_own_packets_are_pushed_to_core_peers_only(star):
    a, b, c, s, e, u = (star[n] for n in "abcseu")
    packet = await kn(a).publish(text="from a", tags=["hub"])
    assert sorted(packet["pushed_to"]) == sorted([b.identity.id, c.identity.id])
    await wait_until(lambda: holds(b, packet["id"]) and holds(c, packet["id"]))
    await settle(*star.values())
    for peer in (s, e, u):
        assert not holds(peer, packet["id"]) and counters(a, peer)["sent"] == 0


async def test_sandbox_packets_are_accepted_but_not_forwarded_nor_served(star):
    a, b, c, s, e = (star[n] for n in "abcse")
    packet = await kn(s).publish(text="from the sandbox", tags=["sandboxed"])
    await wait_until(lambda: holds(a, packet["id"]))
    await settle(*star.values())
    row = kn(a).db.get(packet["id"]).summary
    assert row["tier"] == "sandbox" and not row["relay"]
    # a full have exchange with A still brings B and C nothing: A neither advertises nor serves it
    assert await kn(b).sync(a.identity.id) == 0 and await kn(c).sync(a.identity.id) == 0
    assert not holds(b, packet["id"]) and not holds(c, packet["id"])
    assert s.identity.id not in kn(a).engine.have()["have"]
    found = await kn(e).query(a.identity.id, tag="sandboxed")
    assert found["packets"] == []


async def test_external_peers_may_query_but_their_packets_are_refused(star):
    a, b, e = star["a"], star["b"], star["e"]
    ours = await kn(a).publish(text="public note", tags=["faq"])
    found = await kn(e).query(a.identity.id, tag="faq")
    assert [p["id"] for p in found["packets"]] == [ours["id"]] and found["packets"][0]["verified"]
    assert found["packets"][0]["text"] == "public note"
    theirs = await kn(e).publish(text="from outside", tags=["faq"])   # E pushes it to A (A is CORE for E)
    await settle(*star.values())
    assert not holds(a, theirs["id"])
    packet = proto.open_packet(kn(e).db.get(theirs["id"]).raw)
    with pytest.raises(RefusedByPolicy, match="tier external"):
        await e.request(a.identity.id, "know.push", proto.push_body(packet, 1))
    assert not holds(a, theirs["id"]) and not holds(b, theirs["id"])


async def test_unknown_peers_get_nothing_and_give_nothing(star):
    a, u = star["a"], star["u"]
    ours = await kn(a).publish(text="not for strangers", tags=["private"])
    theirs = await kn(u).publish(text="from a stranger")
    await settle(*star.values())
    assert await kn(u).sync(a.identity.id) == 0          # its have exchange is refused
    with pytest.raises(RefusedByPolicy, match="tier unknown"):
        await kn(u).query(a.identity.id, tag="private")
    assert not holds(u, ours["id"]) and not holds(a, theirs["id"])
    assert counters(a, u)["sent"] == 0


async def test_a_banned_peer_gets_nothing(star):
    a, b, s = star["a"], star["b"], star["s"]
    await a.ban(s.identity.id)
    await wait_until(lambda: s.identity.id not in a.connections)
    packet = await kn(a).publish(text="after the ban")
    await wait_until(lambda: holds(b, packet["id"]))
    await settle(*star.values())
    assert not holds(s, packet["id"])
    assert s.identity.id not in a.connections        # its redials are refused at the door
    assert counters(a, s)["sent"] == 0
