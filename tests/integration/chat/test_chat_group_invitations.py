"""Group invitations between real nodes on 127.0.0.1: nobody is in a group before it accepts;
decline, withdrawal and expiry leave no membership; forged and flooding invitations are refused."""
from __future__ import annotations

import time

import pytest

from core.chat import groups as gr
from core.chat import invitations as inv
from core.chat import protocol as proto
from core.errors import InvitationExpired, NoInvitation, UnknownGroup
from core.signed import seal

from .support import Recorder, befriend, chat, wait_until
from .test_chat_groups import group_texts, join, members, three


def invitation(node, gid):
    return next((i for i in chat(node).groups.invitations() if i["group"] == gid), None)


def push(sender, receiver, content: proto.Content) -> None:
    """``sender`` puts a raw group content on its link to ``receiver`` (as a misbehaving node would)."""
    chat(sender).link_for(receiver.identity.id).queue(proto.encode_content(content))


async def test_an_invited_peer_sees_the_invitation_and_is_a_member_only_after_it_accepts(make_node):
    alice, bob, carol = await three(make_node)
    a, b = alice.identity.id, bob.identity.id
    seen = Recorder(bob)
    made = chat(alice).groups.create("club", ["bob"])
    gid = made["group"]
    assert made["members"] == [a] and made["invited"] == [b]
    await wait_until(lambda: invitation(bob, gid) is not None)
    got = invitation(bob, gid)
    assert (got["name"], got["creator"], got["members"], got["accepted"]) == ("club", a, [a], False)
    assert got["names"][a] == "alice" or got["names"][a] == ""
    assert seen.named("chat_group", group=gid, action="invitation", creator=a)
    assert chat(bob).groups.listing() == [] and members(bob, gid) is None

    # nothing of the group is shown before bob answers: not a message, not a membership
    await chat(alice).groups.send(gid, "before bob answered")            # goes to nobody: bob is not in it
    push(alice, bob, proto.Content(proto.TEXT, "pushed anyway", time.time(), 0, gid,
                                   chat(alice).groups.groups[gid].roster.envelope))
    await wait_until(lambda: seen.named("message_rejected", peer=a, code="chat_unknown_group"))
    assert "has not joined it" in seen.named("message_rejected", peer=a, code="chat_unknown_group")[0].data["reason"]
    with pytest.raises(UnknownGroup, match="accept"):
        chat(bob).groups.read(gid)
    # a creator that lists bob in a roster he never accepted does not make him a member
    r = chat(alice).groups.groups[gid].roster
    pushed = seal(alice.identity, gr.KIND, {"g": gid, "salt": r.salt, "name": "club", "v": 7,
                                            "members": [a, b], "closed": False})
    push(alice, bob, proto.Content(proto.GROUP, group=gid, roster=pushed))
    await wait_until(lambda: seen.named("message_rejected", peer=a, code="chat_no_invitation"))
    assert chat(bob).groups.listing() == [] and invitation(bob, gid)["accepted"] is False

    joined = await chat(bob).groups.accept("club")
    assert joined["joined"] and joined["members"] == [a, b]
    assert seen.named("chat_group", group=gid, action="accepted")
    assert seen.named("chat_group", group=gid, action="joined")
    assert chat(bob).groups.invitations() == []
    assert members(alice, gid) == members(bob, gid) == (2, sorted([a, b]))
    assert chat(alice).groups.listing()[0]["invited"] == []
    await chat(alice).groups.send(gid, "welcome")
    await wait_until(lambda: group_texts(bob, gid) == [(a, "welcome")])
    assert [t for _, t in group_texts(alice, gid)] == ["before bob answered", "welcome"]
    with pytest.raises(NoInvitation):
        await chat(bob).groups.accept(gid)                               # answered already


async def test_a_declined_invitation_leaves_no_trace_and_the_creator_learns_it(make_node):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    gid = chat(alice).groups.create("band", ["bob", "carol"])["group"]
    await join(carol, gid)
    await wait_until(lambda: invitation(bob, gid) is not None)
    creator = Recorder(alice)
    answer = chat(bob).groups.decline("band")
    assert answer == {"group": gid, "name": "band", "declined": True, "creator_told": True}
    assert chat(bob).groups.invitations() == [] and chat(bob).groups.listing() == []
    await wait_until(lambda: creator.named("chat_group", group=gid, action="invitation_declined", peer=b))
    assert chat(alice).groups.listing()[0]["invited"] == []
    assert members(alice, gid) == members(carol, gid) == (2, sorted([a, c]))
    with pytest.raises(NoInvitation, match="no invitation"):
        await chat(bob).groups.accept(gid)
    with pytest.raises(NoInvitation):
        chat(bob).groups.decline(gid)
    await chat(alice).groups.send(gid, "without bob")
    await wait_until(lambda: group_texts(carol, gid) == [(a, "without bob")])
    assert members(bob, gid) is None
    # invited again, bob can accept this time
    chat(alice).groups.invite(gid, "bob")
    await join(bob, gid)
    await wait_until(lambda: members(alice, gid) == members(bob, gid) == members(carol, gid)
                     == (3, sorted([a, b, c])))


async def test_a_withdrawn_invitation_goes_away_and_a_closed_group_withdraws_its_invitations(make_node):
    alice, bob, carol = await three(make_node)
    b = bob.identity.id
    gid = chat(alice).groups.create("tmp", ["bob"])["group"]
    await wait_until(lambda: invitation(bob, gid) is not None)
    seen = Recorder(bob)
    view = chat(alice).groups.remove(gid, "bob")
    assert view["invited"] == [] and view["unreachable"] == []
    await wait_until(lambda: chat(bob).groups.invitations() == [])
    assert seen.named("chat_group", group=gid, action="invitation_withdrawn")
    chat(alice).groups.invite(gid, b)
    await wait_until(lambda: invitation(bob, gid) is not None)
    chat(alice).groups.leave(gid)                         # the creator closes the group
    await wait_until(lambda: chat(bob).groups.invitations() == [])
    with pytest.raises(NoInvitation):
        await chat(bob).groups.accept(gid)


async def test_an_expired_invitation_is_refused_with_its_reason_on_either_side(make_node):
    alice, bob, carol = await three(make_node)
    a, b = alice.identity.id, bob.identity.id
    gid = chat(alice).groups.create("late", ["bob"])["group"]
    await wait_until(lambda: invitation(bob, gid) is not None)
    seen = Recorder(bob)
    chat(bob).groups.clock = lambda: time.time() + inv.INVITE_TTL + 60      # a day later, at bob's
    with pytest.raises(InvitationExpired, match="expired"):
        await chat(bob).groups.accept("late")
    assert chat(bob).groups.invitations() == [] and chat(bob).groups.listing() == []
    assert seen.named("chat_group", group=gid, action="invitation_expired")

    # bob's clock says it is open, alice's that it expired: she refuses his answer and tells him
    chat(bob).groups.clock = time.time
    chat(alice).groups.invite(gid, "bob")
    await wait_until(lambda: invitation(bob, gid) is not None)
    creator = Recorder(alice)
    chat(alice).groups.clock = lambda: time.time() + inv.INVITE_TTL + 60
    with pytest.raises(NoInvitation, match="withdrawn or expired before its creator added you"):
        await chat(bob).groups.accept(gid)
    assert creator.named("message_rejected", peer=b, code="chat_invitation_expired")
    assert chat(bob).groups.invitations() == []
    assert members(alice, gid) == (1, [a]) and members(bob, gid) is None
    # the creator's own sweep forgets invitations nobody answered
    chat(alice).groups.clock = time.time
    chat(alice).groups.invite(gid, "bob")
    chat(alice).groups.clock = lambda: time.time() + inv.INVITE_TTL + 60
    assert chat(alice).groups.sweep() == 1 and chat(alice).groups.listing()[0]["invited"] == []


async def test_the_chat_services_timer_sweep_forgets_expired_invitations_on_both_sides(make_node):
    alice, bob, carol = await three(make_node)
    gid = chat(alice).groups.create("swept", ["bob"])["group"]
    await wait_until(lambda: chat(bob).groups.invites.get(gid) is not None)
    assert chat(bob).groups.next_expiry() == chat(bob).groups.invites.get(gid).expires_at
    seen, creator = Recorder(bob), Recorder(alice)
    later = lambda: time.time() + inv.INVITE_TTL + 60                    # noqa: E731
    chat(bob).groups.clock = chat(alice).groups.clock = later
    chat(bob).sweep()                                                    # what its expiry loop runs
    chat(alice).sweep()
    assert len(chat(bob).groups.invites) == 0 and chat(bob).groups.next_expiry() is None
    assert seen.named("chat_group", group=gid, action="invitation_expired")
    assert creator.named("chat_group", group=gid, action="invitation_expired", peer=bob.identity.id)
    assert chat(alice).groups.groups[gid].invited == {}


async def test_invitations_from_a_non_creator_or_a_forged_one_are_refused(make_node):
    alice, bob, carol = await three(make_node)
    a, b, c = alice.identity.id, bob.identity.id, carol.identity.id
    gid = chat(alice).groups.create("real", ["carol"])["group"]
    await join(carol, gid)
    roster = chat(carol).groups.groups[gid].roster
    seen = Recorder(bob)
    # carol invites bob to alice's group, signing the invitation herself
    forged = seal(carol.identity, inv.INVITE_KIND, {"roster": roster.envelope, "invitee": b,
                                                    "expires": int(time.time()) + 3600})
    push(carol, bob, proto.Content(proto.GROUP, group=gid, roster=forged))
    # ... or relays an invitation alice signed for someone else
    relayed = inv.make_invite(alice.identity, roster, c, time.time() + 3600)
    push(carol, bob, proto.Content(proto.GROUP, group=gid, roster=relayed))
    # ... or signs a roster of her own for alice's group id
    fake_roster = seal(carol.identity, gr.KIND, {"g": gid, "salt": roster.salt, "name": "real", "v": 1,
                                                 "members": [c], "closed": False})
    push(carol, bob, proto.Content(proto.GROUP, group=gid, roster=inv.make_invite(
        carol.identity, type(roster)(gid, c, roster.salt, "real", 1, (c,), False, fake_roster), b,
        time.time() + 3600)))
    await wait_until(lambda: len(seen.named("message_rejected", peer=c, code="chat_not_creator")) == 3)
    reasons = [e.data["reason"] for e in seen.named("message_rejected", peer=c, code="chat_not_creator")]
    assert "who did not create it" in reasons[0] and "not from its creator" in reasons[1]
    # an invitation naming another peer, and one that arrives expired
    push(alice, bob, proto.Content(proto.GROUP, group=gid, roster=inv.make_invite(
        alice.identity, chat(alice).groups.groups[gid].roster, c, time.time() + 3600)))
    push(alice, bob, proto.Content(proto.GROUP, group=gid, roster=inv.make_invite(
        alice.identity, chat(alice).groups.groups[gid].roster, b, time.time() - 5)))
    await wait_until(lambda: seen.named("message_rejected", peer=a, code="malformed")
                     and seen.named("message_rejected", peer=a, code="chat_invitation_expired"))
    assert chat(bob).groups.invitations() == [] and chat(bob).groups.listing() == []
    # a join for an invitation alice never sent: refused, bob stays out
    creator = Recorder(alice)
    push(bob, alice, proto.Content(proto.GROUP, group=gid, roster=inv.make_join(bob.identity, gid, b"\0" * 16)))
    await wait_until(lambda: creator.named("message_rejected", peer=b, code="chat_no_invitation"))
    # ... or one bob signed for carol
    push(bob, alice, proto.Content(proto.GROUP, group=gid, roster=inv.make_join(carol.identity, gid, b"\0" * 16)))
    await wait_until(lambda: creator.named("message_rejected", peer=b, code="chat_forged_sender"))
    assert members(alice, gid) == (2, sorted([a, c]))
    # the group goes on
    await chat(alice).groups.send(gid, "still here")
    await wait_until(lambda: group_texts(carol, gid) == [(a, "still here")])


async def test_a_flood_of_invitations_is_bounded_per_creator_and_the_rest_is_refused(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await befriend(alice, bob, name="bob")
    seen = Recorder(bob)
    gids = [chat(alice).groups.create(f"g{i}", ["bob"])["group"] for i in range(inv.MAX_PER_CREATOR + 3)]
    await wait_until(lambda: len(seen.named("message_rejected", code="chat_too_many_invitations")) == 3)
    assert sorted(i["group"] for i in chat(bob).groups.invitations()) == sorted(gids[:inv.MAX_PER_CREATOR])
    assert "wait for an answer already" in seen.named("message_rejected", code="chat_too_many_invitations")[0].data["reason"]
    # answering one makes room for the next one
    chat(bob).groups.decline(gids[0])
    chat(alice).groups.invite(gids[-1], "bob")
    await wait_until(lambda: invitation(bob, gids[-1]) is not None)
    assert len(chat(bob).groups.invitations()) == inv.MAX_PER_CREATOR


async def test_accepting_an_unknown_invitation_is_refused_clearly(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    await befriend(alice, bob, name="bob")
    with pytest.raises(NoInvitation, match="no invitation to a group 'nothing'"):
        await chat(bob).groups.accept("nothing")
    with pytest.raises(NoInvitation):
        chat(bob).groups.decline("nothing")
