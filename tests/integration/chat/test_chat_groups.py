"""Group chat between real nodes on 127.0.0.1: fan-out, membership by the creator, removal, forgery."""
from __future__ import annotations

import os

import pytest

from core.chat import groups as gr
from core.chat import protocol as proto
from core.errors import NotGroupCreator
from core.signed import seal

from .support import Recorder, befriend, chat, wait_until


async def three(make_node):
    """alice, bob and carol, each allowed to chat with the other two."""
    alice, bob, carol = await make_node("alice"), await make_node("bob"), await make_node("carol")
    await befriend(alice, bob, name="bob")
    await befriend(alice, carol, name="carol")
    await befriend(bob, carol, name="carol")
    return alice, bob, carol


async def join(node, gid):
    """``node`` accepts its invitation to ``gid`` once it arrived; the creator's roster lists it."""
    await wait_until(lambda: chat(node).groups.invites.get(gid) is not None)
    assert (await chat(node).groups.accept(gid))["joined"]


def group_texts(node, gid) -> list[tuple[str, str]]:
    group = chat(node).groups.groups.get(gid)
    return [] if group is None else [(m.author, m.text) for m in group.conv.messages.values()]


def members(node, gid):
    group = chat(node).groups.groups.get(gid)
    return None if group is None else (group.roster.version, sorted(group.roster.members))


async def test_three_nodes_chat_in_a_group_and_agree_on_its_members(make_node):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    seen = Recorder(bob)
    made = chat(alice).groups.create("friends", ["bob"])
    gid = made["group"]
    assert made["members"] == [a] and made["invited"] == [b] and made["version"] == 1 \
        and made["unreachable"] == []
    await join(bob, gid)
    assert members(bob, gid) == (2, sorted([a, b])) and members(alice, gid) == (2, sorted([a, b]))
    assert seen.named("chat_group", group=gid, action="joined")
    chat(alice).groups.invite(gid, "carol")
    await join(carol, gid)
    nodes = (alice, bob, carol)
    await wait_until(lambda: all(members(n, gid) == (3, sorted([a, b, c])) for n in nodes))
    await chat(alice).groups.send(gid, "hi all")
    await chat(bob).groups.send(gid, "hi from bob")
    await wait_until(lambda: all(("hi all" in [t for _, t in group_texts(n, gid)]
                                  and "hi from bob" in [t for _, t in group_texts(n, gid)]) for n in nodes))
    assert seen.named("chat_message", group=gid, peer=a, direction="in")
    got = chat(carol).groups.read(gid)
    assert {(m["from"], m["text"]) for m in got} == {(a, "hi all"), (b, "hi from bob")}
    assert all(m["group"] == gid for m in got)
    listing = chat(carol).groups.listing()
    assert [(g["group"], g["name"], g["creator"], g["version"]) for g in listing] == [(gid, "friends", a, 3)]
    assert all("text" not in g for g in listing)
    # bob leaves: the creator publishes the next version without him; he wipes it
    chat(bob).groups.leave(gid)
    assert chat(bob).groups.groups.get(gid) is None
    await wait_until(lambda: members(alice, gid) == (4, sorted([a, c])) and members(carol, gid) == (4, sorted([a, c])))
    await wait_until(lambda: all(m["state"] == "delivered" for m in chat(alice).groups.read(gid)
                                 if m["outgoing"]))


async def test_a_removed_member_gets_nothing_after_removal(make_node):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    gid = chat(alice).groups.create("trio", ["bob", "carol"])["group"]
    await join(bob, gid)
    await join(carol, gid)
    await wait_until(lambda: members(bob, gid) == members(carol, gid) == (3, sorted([a, b, c])))
    await chat(alice).groups.send(gid, "before")
    await wait_until(lambda: group_texts(carol, gid) == [(a, "before")] and group_texts(bob, gid) == [(a, "before")])
    removed = Recorder(carol)
    chat(alice).groups.remove(gid, "carol")
    await wait_until(lambda: chat(carol).groups.groups.get(gid) is None)        # wiped on carol
    assert removed.named("chat_group", group=gid, action="removed")
    await wait_until(lambda: members(bob, gid) == (4, sorted([a, b])))
    await chat(alice).groups.send(gid, "after")
    await chat(bob).groups.send(gid, "bob after")
    everything = sorted(["before", "after", "bob after"])    # each author's in order; authors interleave
    await wait_until(lambda: sorted(t for _, t in group_texts(bob, gid)) == everything)
    await wait_until(lambda: sorted(t for _, t in group_texts(alice, gid)) == everything)
    assert chat(carol).groups.groups.get(gid) is None
    assert not removed.named("chat_message", group=gid)
    # carol, removed, cannot push a message in either: members refuse it
    seen = Recorder(bob)
    group = gr.Group(chat(bob).groups.groups[gid].roster, chat(bob).groups.groups[gid].conv)
    old = chat(alice).groups.groups[gid].roster              # stale copies carol may still hold
    chat(carol).link_for(b).queue(proto.encode_content(proto.Content(
        proto.TEXT, "sneaky", 1.0, 0, gid, old.envelope)))
    await wait_until(lambda: seen.named("message_rejected", peer=c, code="chat_not_member"))
    assert sorted(t for _, t in group_texts(bob, gid)) == everything
    assert group.roster.version == 4


async def test_a_membership_change_not_signed_by_the_creator_is_refused(make_node):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    gid = chat(alice).groups.create("pair", ["bob"])["group"]
    await join(bob, gid)
    assert members(bob, gid) == (2, sorted([a, b]))
    real = chat(bob).groups.groups[gid].roster
    # carol signs a roster for alice's group that adds her (a higher version)
    forged = seal(carol.identity, gr.KIND, {"g": gid, "salt": real.salt, "name": "pair", "v": 9,
                                            "members": [a, b, c], "closed": False})
    with pytest.raises(NotGroupCreator):
        gr.verify_roster(forged, gid)
    # ... or her own salt: then the id does not name her group
    other = seal(carol.identity, gr.KIND, {"g": gid, "salt": os.urandom(16), "name": "pair", "v": 9,
                                           "members": [a, b, c], "closed": False})
    seen = Recorder(bob)
    for envelope in (forged, other):
        chat(carol).link_for(b).queue(proto.encode_content(proto.Content(proto.GROUP, group=gid, roster=envelope)))
    await wait_until(lambda: len(seen.named("message_rejected", peer=c, code="chat_not_creator")) == 2)
    assert members(bob, gid) == (2, sorted([a, b]))          # unchanged
    chat(carol).link_for(b).queue(proto.encode_content(proto.Content(proto.TEXT, "let me in", 1.0, 0, gid,
                                                                     forged)))
    await wait_until(lambda: len(seen.named("message_rejected", peer=c, code="chat_not_creator")) == 3)
    assert group_texts(bob, gid) == []
    # only the creator changes the members through the API, too
    with pytest.raises(NotGroupCreator):
        chat(bob).groups.invite(gid, "carol")
    # and the conversation goes on
    await chat(alice).groups.send(gid, "still fine")
    await wait_until(lambda: group_texts(bob, gid) == [(a, "still fine")])


async def test_creator_leaving_closes_the_group_everywhere(make_node):
    alice, bob, carol = await three(make_node)
    gid = chat(alice).groups.create("short", ["bob", "carol"])["group"]
    await join(bob, gid)
    await join(carol, gid)
    chat(alice).groups.leave(gid)
    await wait_until(lambda: members(bob, gid) is None and members(carol, gid) is None)
    assert chat(alice).groups.listing() == []
