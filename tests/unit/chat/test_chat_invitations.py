"""The invitation table and envelopes (core.chat.invitations): bounds, expiry, checks."""
from __future__ import annotations

import os
import time

import pytest

from core.chat import groups as gr
from core.chat import invitations as inv
from core.errors import (ForgedSender, InvitationExpired, MalformedMessage, NoInvitation, NotGroupCreator,
                         TooManyInvitations)
from core.identity import Identity
from core.signed import seal


def roster(creator: Identity, name: str, members=()) -> gr.Roster:
    salt = os.urandom(gr.SALT)
    gid = gr.group_id(creator.id, salt)
    return gr.verify_roster(seal(creator, gr.KIND, {"g": gid, "salt": salt, "name": name, "v": 1,
                                                    "members": [creator.id, *members], "closed": False}), gid)


def invitation(creator: Identity, name: str, expires_at: float) -> inv.Invitation:
    return inv.Invitation(roster(creator, name), os.urandom(16), expires_at, time.time())


def test_the_table_is_bounded_per_creator_and_in_all_and_a_newer_copy_replaces():
    table = inv.Invitations()
    creators = [Identity.generate(f"c{i}") for i in range(inv.MAX_INVITATIONS // inv.MAX_PER_CREATOR + 1)]
    later = time.time() + 3600
    for creator in creators[:-1]:
        for i in range(inv.MAX_PER_CREATOR):
            assert table.add(invitation(creator, f"{creator.name}-{i}", later))
        with pytest.raises(TooManyInvitations, match=f"from {creator.id[:12]}"):
            table.add(invitation(creator, "one too many", later))
    assert len(table) == inv.MAX_INVITATIONS
    with pytest.raises(TooManyInvitations, match="group invitations wait"):
        table.add(invitation(creators[-1], "a newcomer", later))
    first = next(iter(table.pending.values()))
    again = inv.Invitation(first.roster, os.urandom(16), later + 60, time.time())
    assert table.add(again) is False and table.get(first.group) is again and len(table) == inv.MAX_INVITATIONS


def test_expiry_and_lookup_by_name_or_prefix():
    table = inv.Invitations()
    creator = Identity.generate("alice")
    now = time.time()
    soon, later = invitation(creator, "soon", now + 10), invitation(creator, "later", now + 1000)
    table.add(soon)
    table.add(later)
    assert table.find("later") is later and table.find(soon.group[:10]) is soon
    with pytest.raises(NoInvitation, match="no invitation to a group 'none'"):
        table.find("none")
    assert table.expire(now + 11) == [soon] and table.find("later") is later
    with pytest.raises(NoInvitation):
        table.find("soon")


def test_an_invitation_is_checked_before_it_is_kept():
    alice, bob, carol = Identity.generate("alice"), Identity.generate("bob"), Identity.generate("carol")
    r = roster(alice, "club")
    now = time.time()

    def opened(envelope, sender=alice.id):
        return inv.open_invite(envelope, sender, bob.id, lambda env: gr.verify_roster(env, r.group), now)

    got = opened(inv.make_invite(alice, r, bob.id, now + 3600))
    assert (got.group, got.creator, got.accepted) == (r.group, alice.id, False)
    far = opened(inv.make_invite(alice, r, bob.id, now + 10 * inv.MAX_INVITE_TTL))
    assert far.expires_at == now + inv.MAX_INVITE_TTL                  # kept at most a week
    with pytest.raises(NotGroupCreator, match="who did not create it"):
        opened(seal(carol, inv.INVITE_KIND, {"roster": r.envelope, "invitee": bob.id, "expires": int(now) + 60}),
               carol.id)
    with pytest.raises(NotGroupCreator, match="not from its creator"):
        opened(inv.make_invite(alice, r, bob.id, now + 60), carol.id)
    with pytest.raises(MalformedMessage, match="names another peer"):
        opened(inv.make_invite(alice, r, carol.id, now + 60))
    with pytest.raises(InvitationExpired):
        opened(inv.make_invite(alice, r, bob.id, now - 1))
    tampered = inv.make_invite(alice, r, bob.id, now + 60)
    tampered["body"]["expires"] += 10 ** 6
    with pytest.raises(NotGroupCreator, match="refused"):
        opened(tampered)
    with pytest.raises(MalformedMessage, match="missing or unexpected"):
        opened(seal(alice, inv.INVITE_KIND, {"roster": r.envelope, "invitee": bob.id}))


def test_an_acceptance_must_be_signed_by_its_sender_for_that_group():
    alice, bob = Identity.generate("alice"), Identity.generate("bob")
    nonce = os.urandom(16)
    assert inv.open_join(inv.make_join(bob, "g1", nonce), bob.id, "g1") == nonce
    with pytest.raises(ForgedSender):
        inv.open_join(inv.make_join(alice, "g1", nonce), bob.id, "g1")
    with pytest.raises(MalformedMessage):
        inv.open_join(inv.make_join(bob, "g2", nonce), bob.id, "g1")
