"""`covey chat` against real headless nodes: every command with --json, a contact request, and
a distinctive marker that is found in no file of either home (database, WAL, logs) afterwards."""
from __future__ import annotations

import json
import signal
import subprocess

from .conftest import COVEY, env, wait_for

MARKER = "QVX-chat-marker-5521"


def connected(node, other) -> bool:
    return any(p["id"] == other.id and p["connected"] for p in node.json("peers", "list"))


def test_chat_commands_end_to_end_and_nothing_on_disk(headless):
    a, b, c = headless("ann"), headless("ben"), headless("cat")
    b.run("peers", "add", a.address, "--name", "ann")
    wait_for(lambda: connected(a, b))
    a.run("peers", "trust", b.id, "external")
    b.run("peers", "trust", "ann", "external")

    sent = b.json("chat", "send", "ann", f"hello {MARKER}")
    assert sent["from"] == b.id and sent["state"] in ("queued", "sent")
    got = wait_for(lambda: a.json("chat", "read", b.id))
    assert [(m["from"], m["text"]) for m in got] == [(b.id, f"hello {MARKER}")]
    assert set(got[0]) >= {"id", "from", "text", "sent_at", "state"}
    wait_for(lambda: b.json("chat", "read", "ann")[0]["state"] == "read")
    listing = a.json("chat", "list")
    assert [(c_["peer"], c_["unread"], c_["encrypted"]) for c_ in listing] == [(b.id, 0, True)]
    assert all("text" not in c_ for c_ in listing)

    # --follow prints new messages as they arrive (JSON lines with --json)
    follow = subprocess.Popen([*COVEY, "--home", str(a.home), "chat", "read", b.id, "--follow", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert json.loads(follow.stdout.readline())["text"] == f"hello {MARKER}"
        b.run("chat", "send", "ann", f"second {MARKER}")
        assert json.loads(follow.stdout.readline())["text"] == f"second {MARKER}"
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(10)

    assert a.json("chat", "timer", b.id, "30s") == {"peer": b.id, "timer": "30s"}
    wait_for(lambda: b.json("chat", "list")[0]["timer"] == "30s")
    bad = a.run("chat", "timer", b.id, "2h", check=False)
    assert bad.returncode != 0 and "30s" in bad.stderr

    shown = a.json("chat", "verify", b.id)
    assert len(shown["safety_number"]) == 60 and not shown["verified"]
    assert b.json("chat", "verify", "ann")["safety_number"] == shown["safety_number"]
    assert a.json("chat", "verify", b.id, "--mark")["verified"]
    assert a.json("chat", "list")[0]["verified"]
    assert a.json("chat", "settings", "--read-receipts", "off", "--typing", "off") == \
        {"read_receipts": False, "typing": False}

    closed = a.json("chat", "close", b.id)
    assert closed["closed"] and closed["peer_told"]
    assert a.json("chat", "read", b.id) == []
    wait_for(lambda: b.json("chat", "read", "ann") == [])

    # a stranger: chat is refused, a contact request gets through, accepting lets it chat
    c.run("peers", "add", a.address)
    wait_for(lambda: connected(a, c))
    c.run("peers", "trust", a.id, "external")
    refused = c.run("chat", "send", a.id, "let me chat", check=False)
    assert refused.returncode == 1 and "covey chat request" in refused.stderr
    assert c.json("chat", "request", a.id, "hi, this is cat") == {"peer": a.id, "sent": True}
    assert [(r["peer"], r["text"]) for r in a.json("chat", "requests")] == [(c.id, "hi, this is cat")]
    assert a.json("chat", "accept", c.id)["tier"] == "external"
    assert a.json("chat", "requests") == []
    c.run("chat", "send", a.id, "thanks")
    wait_for(lambda: [m["text"] for m in a.json("chat", "read", c.id)] == ["thanks"])

    for node in (a, b, c):
        node.stop()
    needle = MARKER.encode()
    files = [p for n in (a, b, c) for p in n.home.rglob("*") if p.is_file()]
    assert any(p.name == "stderr.log" for p in files) and any(p.name == "covey.db" for p in files)
    assert [str(p) for p in files if needle in p.read_bytes()] == []
