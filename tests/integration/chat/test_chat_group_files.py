"""A file sent in a group between real nodes on 127.0.0.1: one pairwise transfer per current
member, each accepted (or refused) as a one-to-one file; nobody outside the group gets one."""
from __future__ import annotations

from core.chat import protocol as proto

from .support import Recorder, chat, wait_until
from .test_chat_files import make_file, sha256_file
from .test_chat_groups import join, three

MiB = 1 << 20


def group_offers(node, gid) -> list[dict]:
    return [v for v in chat(node).files.views() if v["group"] == gid and v["direction"] == "in"]


async def test_a_group_file_goes_to_each_member_who_accepts_it_as_a_one_to_one_file(make_node, tmp_path):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    gid = chat(alice).groups.create("crew", ["bob", "carol"])["group"]
    await join(bob, gid)
    source = tmp_path / "weights.bin"
    digest = make_file(source, MiB + 12345)                 # five chunks, the last one short

    # carol has not answered her invitation: only bob is offered the file
    sent = await chat(alice).groups.send_file(gid, str(source))
    assert sent["name"] == "weights.bin" and sent["unreachable"] == []
    assert [(v["peer"], v["group"], v["direction"]) for v in sent["files"]] == [(b, gid, "out")]
    await wait_until(lambda: len(group_offers(bob, gid)) == 1)
    assert group_offers(carol, gid) == [] and chat(carol).files.views() == []

    await join(carol, gid)
    seen = Recorder(bob)
    sent = await chat(alice).groups.send_file(gid, str(source))
    assert sorted(v["peer"] for v in sent["files"]) == sorted([b, c])
    assert len({v["id"] for v in sent["files"]}) == 2            # its own transfer (id, key) per member
    await wait_until(lambda: len(group_offers(bob, gid)) == 2 and len(group_offers(carol, gid)) == 1)
    assert seen.named("chat_file", peer=a, group=gid, state="offered", direction="in")
    offer = group_offers(bob, gid)[-1]
    assert offer["peer"] == a and offer["name"] == "weights.bin" and offer["size"] == MiB + 12345

    # bob accepts it (as any file), carol refuses hers
    chat(bob).files.accept(offer["id"], str(tmp_path / "bob.bin"))
    chat(carol).files.cancel(group_offers(carol, gid)[0]["id"])
    mine = {v["peer"]: v["id"] for v in sent["files"]}
    await wait_until(lambda: chat(alice).files.find(mine[b]).state == "done"
                     and chat(alice).files.find(mine[c]).state == "cancelled")
    await wait_until(lambda: chat(bob).files.find(offer["id"]).state == "done")
    assert sha256_file(tmp_path / "bob.bin") == digest
    assert chat(alice).files.find(mine[c]).view()["error"] == "the peer refused it"

    # bob leaves: the offer he has not answered goes, and alice's transfer to him ends
    waiting = group_offers(bob, gid)[0]["id"]
    out_to_bob = next(v["id"] for v in chat(alice).files.views() if v["direction"] == "out"
                      and v["peer"] == b and v["state"] == "offered")
    chat(bob).groups.leave(gid)
    assert group_offers(bob, gid) == []
    await wait_until(lambda: chat(alice).files.find(out_to_bob).state == "cancelled")
    assert waiting not in [v["id"] for v in chat(bob).files.views()]


async def test_a_file_offer_from_outside_the_group_is_refused(make_node, tmp_path):
    alice, bob, carol = await three(make_node)
    c = carol.identity.id
    gid = chat(alice).groups.create("pair", ["bob"])["group"]
    await join(bob, gid)
    seen = Recorder(bob)
    fake = {"id": b"\1" * 16, "n": "x.bin", "s": 10, "t": "application/octet-stream", "c": 256 << 10,
            "m": b"\0" * 32, "k": b"\0" * 32}
    chat(carol).link_for(bob.identity.id).queue(proto.encode_content(proto.Content(proto.FILE, file=fake,
                                                                                   group=gid)))
    await wait_until(lambda: seen.named("message_rejected", peer=c, code="chat_not_member"))
    assert group_offers(bob, gid) == [] and chat(bob).files.views() == []
    # a group nobody here is in: refused too
    chat(carol).link_for(bob.identity.id).queue(proto.encode_content(proto.Content(
        proto.FILE, file=fake, group="f" * 32)))
    await wait_until(lambda: seen.named("message_rejected", peer=c, code="chat_unknown_group"))
    assert chat(bob).files.views() == []
    await chat(alice).groups.send(gid, "still fine")
    await wait_until(lambda: any(m["text"] == "still fine" for m in chat(bob).groups.read(gid)))
