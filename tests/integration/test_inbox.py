"""Frames handled in the socket's data callback (core.net.inbox), and the queue behind it."""
from __future__ import annotations

import asyncio

import pytest

from core.errors import RefusedByPolicy
from core.net import inbox

from .conftest import address, wait_until


def where(peer, body) -> dict:
    """A sync handler that says whether it ran inside a task (run()) or in a callback (inline)."""
    return {"in_task": asyncio.current_task() is not None}


async def linked(make_node, **settings):
    alice, bob = await make_node("alice", **settings), await make_node("bob", **settings)
    for node in (alice, bob):
        node.on_message("where", where)
    await bob.add_peer(address(alice))
    await wait_until(lambda: bob.identity.id in alice.connections)
    return alice, bob


async def test_requests_and_replies_are_handled_where_the_frame_arrives_both_ways(make_node):
    alice, bob = await linked(make_node)
    for conn in (alice.connections[bob.identity.id], bob.connections[alice.identity.id]):
        # with the aiohttp this project pins, both shortcuts into its internals are found
        # (an upgrade that moves them keeps working, slower: this says so)
        assert conn.inbox is not None and conn.ws._reader is conn.inbox
        assert conn._write is not None
    # dialler -> listener and listener -> dialler: the handler runs in the data callback
    assert await bob.request(alice.identity.id, "where", {}, timeout=5) == {"in_task": False}
    assert await alice.request(bob.identity.id, "where", {}, timeout=5) == {"in_task": False}


async def test_without_the_inbox_the_connection_works_through_its_queue(make_node, monkeypatch):
    monkeypatch.setattr(inbox, "Inbox", None)   # as with an aiohttp whose internals differ
    alice, bob = await linked(make_node)
    assert alice.connections[bob.identity.id].inbox is None
    assert await bob.request(alice.identity.id, "where", {}, timeout=5) == {"in_task": True}


async def test_order_holds_while_a_full_handler_gate_makes_the_reader_wait(make_node):
    alice, bob = await linked(make_node, handler_tasks=1)
    got: list[int] = []
    release = asyncio.Event()

    async def slow(peer, body):
        got.append(body["n"])
        await release.wait()

    alice.on_message("slow", slow)
    alice.on_message("log", lambda peer, body: got.append(body["n"]))
    for n in range(60):   # every 10th is slow: the second one finds the gate full
        await bob.send(alice.identity.id, "slow" if n % 10 == 0 else "log", {"n": n})
        if n == 25:
            await asyncio.sleep(0.05)   # let frames arrive one by one as well as in bursts
    try:
        await wait_until(lambda: len(got) >= 10)
        await asyncio.sleep(0.2)
        assert got == list(range(10))   # the second slow one (n=10) and all after it wait
    finally:
        release.set()
    await wait_until(lambda: len(got) == 60)
    # async handlers run concurrently (a spawned one may start after the next sync one);
    # the sync ones keep the send order
    assert sorted(got) == list(range(60))
    assert [n for n in got if n % 10] == [n for n in range(60) if n % 10]


async def test_a_handler_error_closes_the_connection_as_before(make_node):
    alice, bob = await linked(make_node)

    def broken(peer, body):
        raise ValueError("a bug in a handler")

    alice.on_message("broken", broken)
    await bob.send(alice.identity.id, "broken", {})
    await wait_until(lambda: bob.identity.id not in alice.connections
                     or alice.connections[bob.identity.id].closed)


async def test_an_error_reply_goes_out_before_a_close_the_handler_scheduled(make_node):
    """What dispatch returns (here: the error reply) starts at once, as when run() awaited
    it: a task the handler scheduled (here: closing the link, as a ban does) comes after."""
    alice, bob = await linked(make_node)

    def refuse(peer, body):
        asyncio.ensure_future(alice.connections[peer].close(4003, "closed after the refusal"))
        raise RefusedByPolicy("not you")

    alice.on_message("refuse", refuse)
    with pytest.raises(RefusedByPolicy, match="not you"):
        await bob.request(alice.identity.id, "refuse", {}, timeout=5)


async def test_an_eager_async_handler_runs_where_the_frame_arrives_until_its_first_wait(make_node):
    """``on_message(..., eager=True)``: the first step of an async handler runs in the data
    callback (no task, no loop turn); after a real wait the rest runs in a task and still answers.
    A plain async handler runs in a task of its own."""
    alice, bob = await linked(make_node)

    async def quick(peer, body):
        return {"in_task": asyncio.current_task() is not None}

    async def waits(peer, body):
        first = asyncio.current_task() is not None
        await asyncio.sleep(0.01)
        return {"first_in_task": first, "then_in_task": asyncio.current_task() is not None}

    alice.on_message("quick", quick, eager=True)
    alice.on_message("waits", waits, eager=True)
    alice.on_message("plain", quick)
    assert await bob.request(alice.identity.id, "quick", {}, timeout=5) == {"in_task": False}
    assert await bob.request(alice.identity.id, "waits", {}, timeout=5) == {"first_in_task": False,
                                                                           "then_in_task": True}
    assert await bob.request(alice.identity.id, "plain", {}, timeout=5) == {"in_task": True}
    assert alice.connections[bob.identity.id].gate.used == 0


async def test_an_eager_handler_that_fails_or_waits_at_stop_is_handled_like_a_task(make_node):
    """A bug raised in an eager handler's first step is reported as a failed task (ERROR event,
    the link stays up), never raised into the connection; one still waiting when the node stops
    is cancelled with the node's other tasks."""
    from core import events as ev

    alice, bob = await linked(make_node)
    errors, cancelled, forever = [], [], asyncio.Event()
    alice.events.on(ev.ERROR, errors.append)

    async def broken(peer, body):
        raise ValueError("a bug in an eager handler")

    async def stuck(peer, body):
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    alice.on_message("broken", broken, eager=True)
    alice.on_message("stuck", stuck, eager=True)
    await bob.send(alice.identity.id, "broken", {})
    await wait_until(lambda: errors)
    assert "a bug in an eager handler" in errors[0].data["message"]
    assert await bob.request(alice.identity.id, "where", {}, timeout=5) == {"in_task": False}
    await bob.send(alice.identity.id, "stuck", {})
    await wait_until(lambda: alice.connections[bob.identity.id].gate.used == 1)
    await asyncio.wait_for(alice.stop(), 10)
    assert cancelled == [True]
