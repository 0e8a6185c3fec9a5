"""`covey knowledge ...` end to end: two headless nodes on loopback driven through the `covey` command."""
from __future__ import annotations

import json
import subprocess

from core.knowledge import protocol as proto

from .conftest import COVEY, env, wait_for

LIST_KEYS = {"id", "author", "seq", "title", "kind", "tags", "created", "tier"}


def run_in(cwd, home, *args, check=True, timeout=90):
    """`covey --home HOME ARGS --json` from ``cwd`` (relative paths are the command's, not the node's)."""
    proc = subprocess.run([*COVEY, "--home", str(home), *args, "--json"], capture_output=True, text=True,
                          env=env(), cwd=cwd, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    return proc


def test_publish_list_show_export_status_and_query_through_the_cli(headless, tmp_path):
    a, b = headless("a"), headless("b")
    b.run("peers", "add", a.address)
    a.run("peers", "trust", b.id, "core")
    b.run("peers", "trust", a.id, "core")
    work = tmp_path / "work"
    work.mkdir()
    big = work / "weights.bin"
    content = bytes(range(256)) * (proto.MAX_FILE_BYTES // 256)   # exactly 16 MiB: the largest packet
    big.write_bytes(content)

    published = run_in(work, a.home, "knowledge", "publish", "weights.bin", "--title", "Model weights",
                       "--kind", "model", "--tag", "ml,Weights")
    assert published["size"] == proto.MAX_FILE_BYTES and published["filename"] == "weights.bin"
    assert published["tags"] == ["ml", "weights"] and published["pushed_to"] == [b.id]
    note = run_in(work, a.home, "knowledge", "publish", "--text", "hello federation", "--tag", "ml")

    rows = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(b.json("knowledge", "list")), timeout=60)
    assert all(LIST_KEYS <= set(row) for row in rows)
    assert {r["id"] for r in rows} == {published["id"], note["id"]}
    assert all(r["author"] == a.id and r["tier"] == "core" for r in rows)
    assert [r["id"] for r in b.json("knowledge", "list", "--tag", "ml", "--author", "a")] == [note["id"],
                                                                                          published["id"]]
    shown = b.json("knowledge", "show", note["id"][:10])
    assert shown["verified"] is True and shown["problem"] is None and shown["text"] == "hello federation"

    out = run_in(work, b.home, "knowledge", "export", published["id"][:12], "copy.bin")
    assert out["path"] == str(work / "copy.bin") and (work / "copy.bin").read_bytes() == content

    status = b.json("knowledge", "status")
    assert status["counters"]["total"]["accepted"] == 2 and status["packets"] == 2
    assert [p["id"] for p in status["peers"]] == [a.id] and status["peers"][0]["accepted"] == 2

    found = b.json("knowledge", "query", "a", "--tag", "ml")
    assert {p["id"] for p in found["packets"]} == {published["id"], note["id"]}
    assert all(p["verified"] for p in found["packets"])


def test_a_file_over_16_mib_is_refused_by_the_cli_and_the_body_limit_holds_for_other_commands(headless, tmp_path):
    from core.app.client import control_request
    a = headless("a")
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(proto.MAX_FILE_BYTES + 1)
    out = run_in(tmp_path, a.home, "knowledge", "publish", str(big), check=False)
    assert out.returncode == 1 and "16 MiB" in out.stderr and "big.bin" in out.stderr
    assert a.json("knowledge", "list") == []
    # the larger body is publish's alone: 100 KB to another command is still refused
    status, body = control_request(a.home, "/v1/knowledge.list", b" " * 100_000, timeout=5)
    assert status == 413 and "knowledge.list" in body["error"]["message"]
    status, body = control_request(a.home, "/v1/knowledge.publish", b" " * (30 << 20), timeout=30)
    assert status == 413 and "knowledge.publish" in body["error"]["message"]
    missing = run_in(tmp_path, a.home, "knowledge", "show", "abcdef", check=False)
    assert missing.returncode == 1 and "no knowledge packet" in missing.stderr
