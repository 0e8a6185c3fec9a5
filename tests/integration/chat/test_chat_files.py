"""Files in a conversation between real nodes on 127.0.0.1: a round trip checked by hash,
resume after a cut (only missing chunks sent again), 500 MB in bounded memory, cancel/refuse
removing the part file, and bad input (each refused with a clear reason; the transfer goes on)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import threading
from pathlib import Path

import psutil
import pytest

from core.chat import files as cf
from core.chat import protocol as proto
from core.errors import BadRequest

from .support import Recorder, chat, chat_pair, wait_until

MiB = 1 << 20


def make_file(path: Path, size: int, block: int = 4 * MiB) -> str:
    """Random bytes in ``path`` (written block by block); returns their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(block, left))
            digest.update(data)
            f.write(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def files(node):
    return chat(node).files


async def offered(sender, receiver, path: Path) -> tuple[dict, cf.Transfer]:
    """``sender`` offers ``path``; returns its view and the receiver's transfer once it arrived."""
    view = await files(sender).send(receiver.identity.id, str(path))
    fid = bytes.fromhex(view["id"])
    await wait_until(lambda: fid in files(receiver).incoming)
    return view, files(receiver).incoming[fid]


def state(node, fid: str) -> str:
    return files(node).find(fid).state


def parts(directory: Path) -> list[Path]:
    return list(directory.glob(".*.part"))


@pytest.fixture
async def pair(make_node):
    return await chat_pair(make_node)


@pytest.fixture
def caplog_chat(caplog):
    caplog.set_level(logging.INFO, logger="covey.chat")
    return caplog


async def refused(caplog, code: str) -> str:
    await wait_until(lambda: any(f"[{code}]" in r.getMessage() for r in caplog.records))
    return next(r.getMessage() for r in caplog.records if f"[{code}]" in r.getMessage())


async def test_file_round_trip_checked_by_hash(pair, tmp_path):
    alice, bob = pair
    src, out = tmp_path / "report.pdf", tmp_path / "inbox"
    out.mkdir()
    want = make_file(src, 3 * MiB + 12345)            # a short last chunk
    seen = Recorder(bob)
    view, incoming = await offered(alice, bob, src)
    assert view["state"] == "offered" and view["direction"] == "out"
    listed = {v["id"]: v for v in files(bob).views()}[view["id"]]
    assert (listed["name"], listed["size"], listed["type"], listed["state"]) == \
        ("report.pdf", src.stat().st_size, "application/pdf", "offered")
    assert incoming.offer.key == files(alice).outgoing[incoming.offer.id].offer.key   # came E2EE

    files(bob).accept(view["id"][:8], str(out))       # a directory: saved under the offered name
    await wait_until(lambda: state(bob, view["id"]) == "done" and state(alice, view["id"]) == "done")
    saved = out / "report.pdf"
    assert sha256_file(saved) == want
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and parts(out) == []
    progress = seen.named("chat_file", file=view["id"])
    assert progress[0].data["state"] == "offered" and progress[-1].data["state"] == "done"
    assert progress[-1].data["done"] == progress[-1].data["total"] == src.stat().st_size
    assert all(set(e.data) == {"peer", "file", "state", "done", "total", "direction"} for e in progress)
    out_t = files(alice).outgoing[incoming.offer.id]
    assert out_t.sends == out_t.offer.chunks             # nothing sent twice
    # the conversation goes on beside it
    await chat(alice).send("bob", "did you get it?")
    await wait_until(lambda: [m["text"] for m in chat(bob).read(alice.identity.id)] == ["did you get it?"])


async def test_send_refuses_relative_paths_directories_and_taken_targets(pair, tmp_path):
    alice, bob = pair
    with pytest.raises(BadRequest, match="absolute"):
        await files(alice).send("bob", "relative/file.txt")
    with pytest.raises(BadRequest, match="directory"):
        await files(alice).send("bob", str(tmp_path))
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    view, _ = await offered(alice, bob, src)
    with pytest.raises(BadRequest, match="absolute"):
        files(bob).accept(view["id"], "b.txt")
    with pytest.raises(BadRequest, match="exists"):
        files(bob).accept(view["id"], str(src))
    files(bob).accept(view["id"], str(tmp_path / "b.txt"))
    await wait_until(lambda: state(bob, view["id"]) == "done")
    assert (tmp_path / "b.txt").read_bytes() == b"hello"


async def test_resume_after_a_cut_sends_only_missing_chunks(pair, tmp_path, monkeypatch):
    alice, bob = pair
    monkeypatch.setattr(cf, "PROGRESS_EVERY", 0.0)     # an event per chunk: cut at a precise point
    src = tmp_path / "big.bin"
    want = make_file(src, 64 * MiB)                    # 256 chunks
    view, incoming = await offered(alice, bob, src)
    n = incoming.offer.chunks
    at_cut: list[bytes] = []
    cuts: list[asyncio.Task] = []

    def progress(event) -> None:
        if not at_cut and event.data["file"] == view["id"] and incoming.done >= n // 8:
            at_cut.append(bytes(incoming.have))        # what bob holds when the cut happens
            conn = alice.connections.get(bob.identity.id)
            if conn is not None:                       # alice's keeper reconnects
                cuts.append(asyncio.ensure_future(conn.close(reason="cut by the test")))
    bob.events.on("chat_file", progress)
    files(bob).accept(view["id"], str(tmp_path / "got.bin"))
    await wait_until(lambda: state(bob, view["id"]) == "done", timeout=60)
    assert cuts and sum(at_cut[0]) < n                 # it really was cut mid-transfer
    assert sha256_file(tmp_path / "got.bin") == want
    out = files(alice).outgoing[incoming.offer.id]
    held = [i for i in range(n) if at_cut[0][i]]
    assert all(out.have[i] == 1 for i in held)         # what bob had was never sent again
    resent = out.sends - n
    assert 0 <= resent <= 2 * cf.WINDOW                # at most what was in flight at the cut
    assert sum(out.have) == out.sends


async def test_500_mb_streams_in_bounded_memory(pair, tmp_path):
    alice, bob = pair
    src = tmp_path / "huge.bin"
    want = make_file(src, 500 * MiB, block=8 * MiB)
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    view, _ = await offered(alice, bob, src)
    files(bob).accept(view["id"], str(tmp_path / "huge.out"))
    while state(bob, view["id"]) != "done":
        assert state(bob, view["id"]) in ("transferring", "saving")
        peak = max(peak, proc.memory_info().rss)
        await asyncio.sleep(0.05)
    await wait_until(lambda: state(alice, view["id"]) == "done")
    assert (peak - base) < 200 * MiB, f"RSS grew by {(peak - base) / MiB:.0f} MiB"
    assert sha256_file(tmp_path / "huge.out") == want


async def test_refusing_mid_transfer_removes_the_part_file(pair, tmp_path):
    alice, bob = pair
    src = tmp_path / "movie.bin"
    make_file(src, 16 * MiB)
    gate = threading.Event()
    real_seal = files(alice)._seal

    def slow_seal(t, i, again):
        if i >= 8:
            gate.wait(30)                              # hold the sender after 8 chunks
        return real_seal(t, i, again)
    files(alice)._seal = slow_seal
    try:
        view, incoming = await offered(alice, bob, src)
        target = tmp_path / "movie.out"
        files(bob).accept(view["id"], str(target))
        await wait_until(lambda: incoming.done >= 8)
        assert parts(tmp_path) == [incoming.part]
        assert stat.S_IMODE(incoming.part.stat().st_mode) == 0o600
        assert files(bob).cancel(view["id"])["state"] == "cancelled"
        assert parts(tmp_path) == [] and not target.exists()
        await wait_until(lambda: state(alice, view["id"]) == "cancelled")
        assert files(alice).find(view["id"]).error == "the peer refused it"
    finally:
        gate.set()
    await asyncio.sleep(0.2)                           # late chunks are dropped, not written
    assert parts(tmp_path) == [] and not target.exists()

    # an offer refused before it was accepted leaves nothing either
    view2, _ = await offered(alice, bob, src)
    files(bob).cancel(view2["id"])
    await wait_until(lambda: state(alice, view2["id"]) == "cancelled")
    assert parts(tmp_path) == []


# -- bad input ----------------------------------------------------------------------------
async def test_a_chunk_whose_hash_does_not_match_is_refused_and_asked_again(pair, tmp_path, caplog_chat):
    alice, bob = pair
    src = tmp_path / "doc.bin"
    want = make_file(src, 2 * MiB)
    real_seal = files(alice)._seal
    forged: list[int] = []

    def lying_seal(t, i, again):
        if i == 2 and not forged:                      # validly sealed, but not the manifest's chunk
            forged.append(i)
            return t.aead.encrypt(cf.nonce(i), os.urandom(t.offer.chunk_len(i)), cf._ad(t.offer.id, i))
        return real_seal(t, i, again)
    files(alice)._seal = lying_seal
    view, incoming = await offered(alice, bob, src)
    files(bob).accept(view["id"], str(tmp_path / "doc.out"))
    line = await refused(caplog_chat, "chat_file_bad_chunk")
    assert "chunk 2" in line and "hash" in line and alice.identity.id[:12] in line
    await wait_until(lambda: state(bob, view["id"]) == "done")
    assert sha256_file(tmp_path / "doc.out") == want
    assert files(alice).outgoing[incoming.offer.id].have[2] == 2     # asked for again, once
    assert incoming.bad == 1


@pytest.fixture
async def held(pair, tmp_path):
    """alice sends a 4 MiB file that bob accepted; alice's sender is held after the first chunk
    until the test releases it (so bob's transfer is open while bad chunks come in)."""
    alice, bob = pair
    src = tmp_path / "held.bin"
    want = make_file(src, 4 * MiB)
    gate = threading.Event()
    real_seal = files(alice)._seal

    def slow_seal(t, i, again):
        if i >= 1:
            gate.wait(30)
        return real_seal(t, i, again)
    files(alice)._seal = slow_seal
    view, incoming = await offered(alice, bob, src)
    files(bob).accept(view["id"], str(tmp_path / "held.out"))
    await wait_until(lambda: incoming.done >= 1)
    try:
        yield alice, bob, incoming, view
    finally:
        gate.set()
    await wait_until(lambda: state(bob, view["id"]) == "done")       # the transfer went on
    assert sha256_file(tmp_path / "held.out") == want


async def test_an_oversized_chunk_is_refused(held, caplog_chat):
    alice, bob, incoming, _ = held
    fid = incoming.offer.id
    await alice.send(bob.identity.id, cf.CHUNK, {"f": fid, "i": 3, "d": os.urandom(cf.CHUNK_SIZE + cf.TAG + 1)})
    line = await refused(caplog_chat, "chat_file_chunk_too_large")
    assert "chunk 3" in line and not incoming.have[3]


async def test_a_chunk_for_an_unknown_file_is_refused(held, caplog_chat):
    alice, bob, incoming, _ = held
    await alice.send(bob.identity.id, cf.CHUNK, {"f": os.urandom(16), "i": 0, "d": b"x" * 100})
    assert "never offered" in await refused(caplog_chat, "chat_file_unknown")
    # bob asks alice for a file she never offered him: refused on her side too
    with pytest.raises(Exception, match="did not offer"):
        await bob.request(alice.identity.id, cf.MANIFEST, {"f": os.urandom(16)})


async def test_a_chunk_index_out_of_range_is_refused(held, caplog_chat):
    alice, bob, incoming, _ = held
    fid, n = incoming.offer.id, incoming.offer.chunks
    await alice.send(bob.identity.id, cf.CHUNK, {"f": fid, "i": n, "d": b"x" * 100})
    line = await refused(caplog_chat, "chat_file_chunk_range")
    assert f"chunk index {n} is outside" in line
    caplog_chat.clear()
    await bob.send(alice.identity.id, cf.GET, {"f": fid, "i": [0, 10 ** 9]})    # and asking for one
    assert "outside" in await refused(caplog_chat, "chat_file_chunk_range")


async def test_a_bad_offer_is_refused_and_the_sender_told(pair, caplog_chat):
    alice, bob = pair
    fid = os.urandom(16)
    bad = {"id": fid, "n": "x", "s": 10, "t": "text/plain", "c": 1, "m": bytes(32), "k": bytes(32)}
    link = chat(alice)._link(bob.identity.id)
    await link.ensure_bundle()
    alice_view = Recorder(alice)
    link.queue(proto.encode_content(proto.Content(proto.FILE, file=bad)))
    assert "chunk size" in await refused(caplog_chat, "chat_file_bad_offer")
    assert files(bob).incoming == {}
    await wait_until(lambda: alice_view.named("message_rejected", type=cf.END))   # "refused", unknown here


async def test_a_file_offer_from_a_peer_that_may_not_chat_is_refused(pair, tmp_path):
    alice, bob = pair
    await chat(alice).send("bob", "hello")             # a session exists: the offer would get through
    await wait_until(lambda: chat(bob).read(alice.identity.id, mark=False))
    bob.peers.set_tier(alice.identity.id, "unknown")   # bob no longer chats with alice
    seen = Recorder(bob)
    src = tmp_path / "x.bin"
    src.write_bytes(b"x" * 1000)
    view = await files(alice).send(bob.identity.id, str(src))
    await wait_until(lambda: seen.named("message_rejected", type="chat.msg"))
    await alice.send(bob.identity.id, cf.CHUNK, {"f": bytes.fromhex(view["id"]), "i": 0, "d": b"x"})
    await wait_until(lambda: seen.named("message_rejected", type=cf.CHUNK))
    assert all(e.data["code"] == "refused_by_policy" for e in seen.named("message_rejected"))
    assert files(bob).incoming == {} and state(alice, view["id"]) == "offered"


async def test_a_file_changed_after_the_offer_stops_with_a_clear_reason(pair, tmp_path, caplog_chat):
    alice, bob = pair
    src = tmp_path / "draft.bin"
    make_file(src, 1 * MiB)
    view, incoming = await offered(alice, bob, src)
    with open(src, "r+b") as f:                        # edited after it was offered
        f.seek(300_000)
        f.write(b"edited")
    files(bob).accept(view["id"], str(tmp_path / "draft.out"))
    await wait_until(lambda: state(bob, view["id"]) == "failed")
    assert "changed on the sender's disk" in files(bob).find(view["id"]).error
    assert "changed on disk" in files(alice).find(view["id"]).error and state(alice, view["id"]) == "failed"
    assert incoming.bad == 1 and parts(tmp_path) == [] and not (tmp_path / "draft.out").exists()
