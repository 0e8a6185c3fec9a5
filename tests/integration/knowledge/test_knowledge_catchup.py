"""Catch-up: a node that was down while packets were published gets every one of them, once."""
from __future__ import annotations

from ..conftest import wait_until
from .conftest import counters, kn, link, settle

MISSED = 50


async def test_a_restarted_node_catches_up_on_everything_it_missed_and_nothing_twice(fed):
    a, b, c = await fed.start("a"), await fed.start("b"), await fed.start("c")
    await link(b, a, "core", "core")
    await link(c, a, "core", "core")
    await link(c, b, "core", "core")
    first = await kn(a).publish(text="before the outage")
    await wait_until(lambda: kn(c).db.has(first["id"]))
    await settle(a, b, c)
    before = counters(c)
    port = await fed.stop("c")

    published = [await kn(a).publish(text=f"missed {i}", tags=["outage"]) for i in range(MISSED - 5)]
    published += [await kn(b).publish(text=f"missed from b {i}") for i in range(5)]
    await settle(a, b)

    c = await fed.start("c", port=port)            # same home, same port: a and b redial it, it redials them
    ids = {p["id"] for p in published}
    await wait_until(lambda: all(kn(c).db.has(pid) for pid in ids), timeout=30)
    await settle(a, b, c)
    after = counters(c)
    assert after["accepted"] - before["accepted"] == MISSED
    assert after["duplicates"] == before["duplicates"]        # nothing came twice
    assert after["received"] - before["received"] == MISSED
    assert after["rejected"] == before["rejected"]
    assert kn(c).db.count == MISSED + 1
    have = kn(c).engine.have()["have"]
    assert have == {a.identity.id: MISSED - 5 + 1, b.identity.id: 5}


async def test_a_node_offline_catches_up_from_a_relay_when_the_author_is_gone(fed):
    """C is only linked to B; the author A is stopped before C comes back: B's copy serves it."""
    a, b, c = await fed.start("a"), await fed.start("b"), await fed.start("c")
    await link(b, a, "core", "core")
    await link(c, b, "core", "core")
    await settle(a, b, c)
    port = await fed.stop("c")
    published = [await kn(a).publish(text=f"relayed {i}") for i in range(20)]
    await wait_until(lambda: all(kn(b).db.has(p["id"]) for p in published))
    await fed.stop("a")
    c = await fed.start("c", port=port)
    await wait_until(lambda: all(kn(c).db.has(p["id"]) for p in published), timeout=30)
    assert counters(c)["duplicates"] == 0


async def test_the_have_exchange_is_repeated_so_peers_that_only_pull_keep_up(fed):
    """E is EXTERNAL at A: A never sends it anything, E pulls A's packets on its own schedule."""
    a, e = await fed.start("a"), await fed.start("e")
    await link(e, a, "core", "external")
    await settle(a, e)
    kn(e).sync_interval = 0.2
    packet = await kn(a).publish(text="pulled, never pushed")
    assert packet["pushed_to"] == []
    await wait_until(lambda: kn(e).db.has(packet["id"]), timeout=20)
    assert counters(a, e)["sent"] == 1 and counters(e)["accepted"] == 1
