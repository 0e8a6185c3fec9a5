"""Reliability and ephemerality between real nodes: 10,000 messages across cut connections,
and a marker that reaches no file, database page, log line or event."""
from __future__ import annotations

import asyncio
import json
import logging

from core.logs import JsonLines, log_events

from .support import chat, chat_pair, texts, wait_until

N = 10_000
CUT_EVERY = 200


async def test_ten_thousand_messages_exactly_once_in_order_across_cuts(make_node):
    alice, bob = await chat_pair(make_node)
    a_id, b_id = alice.identity.id, bob.identity.id
    got: list[str] = []
    cuts: list[asyncio.Task] = []

    def arrived(event) -> None:
        if event.data["direction"] != "in" or event.data["peer"] != a_id:
            return
        got.append(chat(bob).conversations[a_id].messages[event.data["id"]].text)
        if len(got) % CUT_EVERY == 0 and len(got) < N:
            conn = alice.connections.get(b_id)
            if conn is not None:                       # the test cuts; alice's keeper reconnects
                cuts.append(asyncio.ensure_future(conn.close(reason="cut by the test")))
    bob.events.on("chat_message", arrived)
    link = chat(alice)._link(b_id)
    for i in range(N):
        while link.out.unacked >= 900:                 # the outbox bound (1000): wait for acks
            await asyncio.sleep(0.005)
        await chat(alice).send("bob", f"m{i}")
    await wait_until(lambda: len(got) >= N, timeout=600, step=0.1)
    await asyncio.sleep(0.2)                           # a duplicate, if any, would show now
    assert len(got) == N and got == [f"m{i}" for i in range(N)]
    assert len(cuts) >= N // CUT_EVERY // 2            # the connection really was cut, many times
    await wait_until(lambda: link.out.unacked == 0, timeout=60)


async def test_marker_reaches_no_file_database_log_or_event(make_node, tmp_path):
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(JsonLines().format(record))
    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        alice, bob = await chat_pair(make_node)
        events = []
        for node in (alice, bob):
            log_events(node.events)                     # as headless nodes log them
            node.events.on(None, events.append)
        marker = "ZQXJ-marker-7731-do-not-persist"
        a_id = alice.identity.id
        chat(alice).set_timer("bob", "5m")
        await chat(alice).send("bob", f"the secret is {marker}")
        await wait_until(lambda: any(marker in t for t in texts(bob, alice)))
        chat(bob).read(a_id)
        await chat(bob).send(a_id, f"got {marker}")
        await chat(alice).typing("bob", True)
        await wait_until(lambda: any(marker in t for t in texts(alice, bob)))
        chat(alice).verify("bob", mark=True)
        chat(alice).close("bob")
        await wait_until(lambda: texts(bob, alice) == [])
        for node in (alice, bob):
            node.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    needle = marker.encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "covey.db-wal" or p.name == "covey.db" for p in files)
    assert [p for p in files if needle in p.read_bytes()] == []
    assert [r for r in records if marker in r] == []
    assert len(records) > 10
    assert [e.name for e in events if marker in json.dumps(e.data, default=str)] == []
    assert any(e.name == "chat_message" for e in events)
