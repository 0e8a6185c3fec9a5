"""`covey chat mailbox` and `covey chat group ...` against real headless nodes: an offline
recipient served by a CORE mailbox peer after a restart, and a three-node group."""
from __future__ import annotations

from .conftest import wait_for


def connected(node, other) -> bool:
    return any(p["id"] == other.id and p["connected"] for p in node.json("peers", "list"))


def link(a, b, tier_ab: str, tier_ba: str) -> None:
    a.run("peers", "add", b.address)
    wait_for(lambda: connected(a, b) and connected(b, a))
    a.run("peers", "trust", b.id, tier_ab)
    b.run("peers", "trust", a.id, tier_ba)


def test_offline_recipient_through_a_core_mailbox_and_a_group(headless, tmp_path):
    ann, ben, cat = headless("ann"), headless("ben"), headless("cat")
    link(ann, ben, "external", "external")
    link(ann, cat, "core", "core")
    link(cat, ben, "core", "core")
    assert cat.json("chat", "mailbox")["count"] == 0

    # a group of three: create (invitations), accept, send, read, list
    made = ann.json("chat", "group", "create", "team", ben.id, cat.id)
    gid = made["group"]
    assert made["members"] == [ann.id] and sorted(made["invited"]) == sorted([ben.id, cat.id])
    for node in (ben, cat):
        got = wait_for(lambda node=node: node.json("chat", "group", "invitations"))
        assert [(i["group"], i["name"], i["creator"], i["accepted"]) for i in got] == [(gid, "team", ann.id, False)]
        assert node.json("chat", "group", "list") == []
        joined = node.json("chat", "group", "accept", "team")
        assert joined["joined"] and node.id in joined["members"]
        assert node.json("chat", "group", "invitations") == []
    wait_for(lambda: sorted(ann.json("chat", "group", "list")[0]["members"]) == sorted([ann.id, ben.id, cat.id]))
    assert [g["group"] for g in ben.json("chat", "group", "list")] == [gid]
    refused = ben.run("chat", "group", "accept", "team", check=False)
    assert refused.returncode != 0 and "no invitation" in refused.stderr

    # a file in the group: one offer per member, each accepted like a one-to-one file
    source = tmp_path / "notes.txt"
    source.write_bytes(b"group notes\n" * 5000)
    sent = ann.json("chat", "group", "file", "send", "team", str(source))
    assert sorted(f["peer"] for f in sent["files"]) == sorted([ben.id, cat.id]) and sent["unreachable"] == []
    offer = wait_for(lambda: [f for f in ben.json("chat", "file", "list") if f["direction"] == "in"])[0]
    assert offer["group"] == gid and offer["name"] == "notes.txt"
    ben.json("chat", "file", "accept", offer["id"], "--to", str(tmp_path / "ben-notes.txt"))
    wait_for(lambda: ben.json("chat", "file", "list")[0]["state"] == "done")
    assert (tmp_path / "ben-notes.txt").read_bytes() == source.read_bytes()
    sent = ben.json("chat", "group", "send", "team", "hello team")
    assert sent["group"] == gid and sent["from"] == ben.id
    got = wait_for(lambda: ann.json("chat", "group", "read", gid))
    assert [(m["from"], m["text"], m["group"]) for m in got] == [(ben.id, "hello team", gid)]
    removed = ann.json("chat", "group", "remove", gid, cat.id)
    assert removed["version"] == 4 and cat.id not in removed["members"]
    wait_for(lambda: cat.json("chat", "group", "list") == [])
    assert "hello team" in ann.run("chat", "group", "read", gid).stdout
    ann.json("chat", "group", "invite", gid, cat.id)            # cat declines this time
    wait_for(lambda: cat.json("chat", "group", "invitations"))
    said = cat.run("chat", "group", "invitations").stdout
    assert said.startswith("team  from ") and f"covey chat group accept {gid[:12]}" in said
    assert cat.json("chat", "group", "decline", gid)["declined"]
    wait_for(lambda: ann.json("chat", "group", "list")[0]["invited"] == [])
    assert cat.json("chat", "group", "invitations") == [] and cat.json("chat", "group", "list") == []

    # ann and ben have chatted; ben goes down; ann's messages wait at cat
    ann.json("chat", "send", ben.id, "hi")
    wait_for(lambda: ann.json("chat", "read", ben.id)[0]["state"] in ("delivered", "read"))
    ben.stop()
    wait_for(lambda: not connected(ann, ben))
    for i in range(3):
        ann.json("chat", "send", ben.id, f"offline {i}")
    box = wait_for(lambda: (lambda s: s if s["count"] == 3 else None)(cat.json("chat", "mailbox")))
    assert [(r["recipient"], r["count"]) for r in box["recipients"]] == [(ben.id, 3)]
    assert all("text" not in r for r in box["recipients"])
    ann.stop()

    ben.start()                                   # same home, a new port: it reaches cat only
    ben.run("peers", "add", cat.address)
    got = wait_for(lambda: [m["text"] for m in ben.json("chat", "read", ann.id)] or None, 30)
    wait_for(lambda: [m["text"] for m in ben.json("chat", "read", ann.id)] == [f"offline {i}" for i in range(3)])
    assert got[0] == "offline 0"
    wait_for(lambda: cat.json("chat", "mailbox")["count"] == 0)
