"""`covey chat file` against real headless nodes: send (a path relative to the shell's
directory), list with progress, accept --to a directory, and cancel."""
from __future__ import annotations

import hashlib
import os
import subprocess

from .conftest import COVEY, env, wait_for


def connected(node, other) -> bool:
    return any(p["id"] == other.id and p["connected"] for p in node.json("peers", "list"))


def test_file_commands_end_to_end(headless, tmp_path):
    a, b = headless("ann"), headless("ben")
    b.run("peers", "add", a.address, "--name", "ann")
    wait_for(lambda: connected(a, b))
    a.run("peers", "trust", b.id, "external")
    b.run("peers", "trust", "ann", "external")

    work = tmp_path / "work"
    work.mkdir()
    data = os.urandom(700_000)
    (work / "notes.txt").write_bytes(data)
    sent = subprocess.run([*COVEY, "--home", str(b.home), "chat", "file", "send", "ann", "notes.txt", "--json"],
                          cwd=work, capture_output=True, text=True, env=env(), check=True)  # relative: the CLI's cwd
    assert '"state": "offered"' in sent.stdout
    offer = wait_for(lambda: [f for f in a.json("chat", "file", "list") if f["direction"] == "in"])[0]
    assert (offer["name"], offer["size"], offer["type"], offer["state"]) == \
        ("notes.txt", len(data), "text/plain", "offered")
    bad = a.run("chat", "file", "send", b.id, str(work), check=False)
    assert bad.returncode == 1 and "directory" in bad.stderr

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    a.json("chat", "file", "accept", offer["id"][:8], "--to", str(inbox))
    wait_for(lambda: a.json("chat", "file", "list")[0]["state"] == "done")
    saved = inbox / "notes.txt"
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [f["state"] for f in wait_for(lambda: [f for f in b.json("chat", "file", "list")
                                                 if f["state"] == "done"])] == ["done"]

    second = b.json("chat", "file", "send", "ann", str(work / "notes.txt"))
    wait_for(lambda: len(a.json("chat", "file", "list")) == 2)
    assert b.json("chat", "file", "cancel", second["id"])["state"] == "cancelled"
    wait_for(lambda: {f["id"]: f["state"] for f in a.json("chat", "file", "list")}[second["id"]] == "cancelled")
    for node in (a, b):
        node.stop()
