"""Group chat: named groups whose messages fan out over the pairwise links.

A group has a creator, the one authority on who is in it; nobody is in a group
without saying yes: the creator *invites* (:mod:`core.chat.invitations`), the
invited peer accepts (or declines) and only then does the creator's next roster
list it. Its membership (a
*roster*) is an envelope signed by the creator (:func:`core.signed.seal`, kind
``chat-group``, body ``{"g", "salt", "name", "v", "members", "closed"}``); the
group id is ``sha256(creator id | salt)`` (32 hex digits), so only the
creator can sign a roster for it. Each change (invite, remove, a member
leaving) is a new roster with the next version ``v``; members apply only a
newer one, so every member converges on the creator's latest list. The
creator sends each new roster (content ``group``) to every member, and to a
removed one (which then wipes the group); every group text carries the roster
its author holds, so a member that missed the creator's copy catches up from
any message. A roster that lists this node is adopted only after the person
accepted an invitation to that group; a group content's envelope is a roster,
an invitation or an acceptance (told apart by its signed kind).

A text goes to every other member of the current roster over their links:
a member who left or was removed is no longer sent anything, and a message
from someone not in the receiver's current roster is refused. Every pair of
members must allow each other to chat (their links carry the messages).

Memory only, as one-to-one chat: leaving (or being removed) wipes the group.
The creator leaving closes the group for everyone.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from core import events as ev
from core.errors import BadRequest, CoveyError, InvalidSignature, MalformedMessage, PeerUnreachable
from core.identity import is_peer_id
from core.signed import seal, verify_only

from core.chat import protocol as proto
from core.chat.conversation import DELIVERED, SENT, Conversation
from core.chat import invitations as inv
from core.chat.errors import (InvitationExpired, NoInvitation, NotGroupCreator, NotGroupMember, OutboxFull,
                              UnknownGroup)
from core.chat.invitations import Invitation, Invitations

log = logging.getLogger("covey.chat.groups")

KIND = "chat-group"
MAX_MEMBERS = 50          # including the creator (fan-out is pairwise: tens of members)
MAX_GROUPS = 64           # groups this node is in at once
MAX_NAME = 64
SALT = 16
_ROSTER = frozenset({"g", "salt", "name", "v", "members", "closed"})
JOIN_WAIT = 10.0          # seconds `accept` waits for the creator's roster that lists us


class GroupTag(NamedTuple):
    """What a group message's copy on one member's link is tagged with (for its state)."""
    group: str
    msg_id: int
    member: str


@dataclass(frozen=True)
class Roster:
    """A verified membership of a group."""
    group: str
    creator: str
    salt: bytes
    name: str
    version: int
    members: tuple[str, ...]
    closed: bool
    envelope: dict


class Sent(NamedTuple):
    """An invitation the creator sent and nobody answered yet."""
    nonce: bytes
    expires_at: float


@dataclass
class Group:
    """A group this node is in (memory only)."""
    roster: Roster
    conv: Conversation
    pending: "OrderedDict[int, set[str]]" = field(default_factory=OrderedDict)  # msg id -> not delivered to
    invited: "dict[str, Sent]" = field(default_factory=dict)   # as creator: peer -> our open invitation

    @property
    def id(self) -> str:
        return self.roster.group

    def __reduce_ex__(self, protocol):
        raise TypeError("a group conversation stays in memory: it cannot be pickled")


def group_id(creator: str, salt: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(creator) + salt).hexdigest()[:32]


def clean_name(name) -> str:
    if not isinstance(name, str):
        raise BadRequest("a group name must be text")
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest(f"a group name is 1 to {MAX_NAME} printable characters")
    return name


def verify_roster(envelope, group: str | None = None) -> Roster:
    """Check a roster: signed, well formed, and signed by the creator the group id names.

    Raises NotGroupCreator (not the creator's signature) or MalformedMessage."""
    try:
        signer, body = verify_only(envelope, KIND)
    except InvalidSignature as exc:
        raise NotGroupCreator(f"group membership refused: {exc}") from None
    if set(body) != _ROSTER:
        raise MalformedMessage("group membership has missing or unexpected fields")
    gid, salt, name, version, members, closed = (body[k] for k in ("g", "salt", "name", "v", "members", "closed"))
    if not isinstance(salt, bytes) or len(salt) != SALT or not isinstance(gid, str):
        raise MalformedMessage("group membership: bad group id or salt")
    if gid != group_id(signer, salt) or (group is not None and gid != group):
        raise NotGroupCreator(f"membership change for group {str(group or gid)[:12]} is signed by "
                              f"{signer[:12]}, who did not create it")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2 ** 62:
        raise MalformedMessage("group membership: bad version")
    if not isinstance(closed, bool) or not isinstance(members, list) or len(members) > MAX_MEMBERS \
            or not all(is_peer_id(m) for m in members) or len(set(members)) != len(members):
        raise MalformedMessage(f"group membership: members must be at most {MAX_MEMBERS} distinct peer ids")
    if not closed and signer not in members:
        raise MalformedMessage("group membership: an open group includes its creator")
    try:
        name = clean_name(name)
    except BadRequest as exc:
        raise MalformedMessage(f"group membership: {exc}") from None
    return Roster(gid, signer, salt, name, version, tuple(members), closed, envelope)


class Groups:
    """The groups of one node and the invitations it got; ``chat`` is the ChatService (links,
    policy, events)."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.groups: dict[str, Group] = {}
        self.invites = Invitations()               # invitations we got, not answered (or accepted, on the way)
        self._joined: dict[str, asyncio.Event] = {}   # group -> set when we join it (an `accept` waits)
        self.clock = time.time                     # the wall clock invitations expire by

    @property
    def me(self) -> str:
        return self.chat.node.identity.id

    def wipe(self) -> None:
        for group in self.groups.values():
            group.conv.wipe()
        self.groups.clear()
        self.invites.clear()
        self._joined.clear()

    # -- the API -----------------------------------------------------------------
    def create(self, name: str, refs: list[str]) -> dict:
        """Create a group (us, its creator and authority, its one member) and invite the given peers."""
        name = clean_name(name)
        if len(self.groups) >= MAX_GROUPS:
            raise BadRequest(f"this node is in {len(self.groups)} groups, its limit")
        peers = self._members(refs)
        salt = os.urandom(SALT)
        gid = group_id(self.me, salt)
        body = {"g": gid, "salt": salt, "name": name, "v": 1, "members": [self.me], "closed": False}
        roster = verify_roster(seal(self.chat.node.identity, KIND, body), gid)
        group = self.groups[gid] = Group(roster, Conversation(gid, self.me))
        self._event(group, "created")
        unreachable = [peer for peer in peers if not self._invite(group, peer)]
        return {**self.view(group), "unreachable": unreachable}

    def invite(self, ref: str, peer_ref: str) -> dict:
        """As creator: invite a peer (it joins when it accepts); again: a fresh invitation."""
        group = self._mine(ref)
        peer = self._members([peer_ref])[0]
        self._expire_sent(group)
        if peer in group.roster.members:
            raise BadRequest(f"{peer[:12]} is already in {group.roster.name}")
        group.invited.pop(peer, None)      # inviting again replaces the open invitation (a new expiry)
        if len(group.roster.members) + len(group.invited) >= MAX_MEMBERS:
            raise BadRequest(f"a group has at most {MAX_MEMBERS} members (open invitations count)")
        reached = self._invite(group, peer)
        return {**self.view(group), "unreachable": [] if reached else [peer]}

    def remove(self, ref: str, peer_ref: str) -> dict:
        """As creator: remove a member, or withdraw an open invitation."""
        group = self._mine(ref)
        peer = self._resolve(peer_ref)
        if peer in group.invited and peer not in group.roster.members:
            del group.invited[peer]
            unreachable = self._fanout(group.roster, proto.Content(proto.LEAVE, group=group.id), [peer])
            self._event(group, "invitation_withdrawn", peer=peer)
            return {**self.view(group), "unreachable": unreachable}
        if peer not in group.roster.members or peer == self.me:
            raise BadRequest(f"{peer[:12]} is not a member {group.roster.name} can lose "
                             f"(the creator leaves with `covey chat group leave`)")
        # the removed member hears it (and wipes the group); nothing later goes to it
        return self._publish(group, [m for m in group.roster.members if m != peer], notify=(peer,),
                             action="removed")

    def leave(self, ref: str) -> dict:
        """Leave the group and wipe it here; the creator leaving closes it for everyone."""
        group = self._find(ref)
        roster = group.roster
        if roster.creator == self.me:
            self._publish(group, list(roster.members), closed=True, action="closed")
            self._fanout(roster, proto.Content(proto.LEAVE, group=group.id), list(group.invited))
            group.invited.clear()
        else:
            self._fanout(roster, proto.Content(proto.LEAVE, group=group.id), [roster.creator])
        self._drop(group, "left")
        return {"group": group.id, "name": roster.name, "left": True}

    async def send(self, ref: str, text: str) -> dict:
        """Send ``text`` to every other member of the group's current membership."""
        text = proto.check_text(text)
        group = self._find(ref)
        if group.roster.closed:
            raise UnknownGroup(f"the group {group.roster.name} was closed")
        others = [m for m in group.roster.members if m != self.me]
        msg = group.conv.add(self.me, text, time.time(), outgoing=True, ttl=0)
        content = proto.Content(proto.TEXT, text, msg.sent_at, 0, group.id, group.roster.envelope)
        group.pending[msg.id] = set(others)
        while len(group.pending) > group.conv.max_messages:
            group.pending.popitem(last=False)
        unreachable = self._fanout(group.roster, content, others, msg.id)
        for member in unreachable:
            group.pending[msg.id].discard(member)
        self.chat.node.events.emit(ev.CHAT_MESSAGE, peer=self.me, id=msg.id, direction="out", group=group.id)
        self.chat.changed_soon()
        return {**msg.view(), "group": group.id, "unreachable": unreachable}

    async def send_file(self, ref: str, path: str) -> dict:
        """Offer the file at ``path`` to every other member: a pairwise transfer to each (hashed once);
        each member accepts it as a one-to-one file (``covey chat file accept``)."""
        group = self._find(ref)
        if group.roster.closed:
            raise UnknownGroup(f"the group {group.roster.name} was closed")
        others = [m for m in group.roster.members if m != self.me]
        if not others:
            raise BadRequest(f"nobody else is in {group.roster.name} yet (invitations not answered)")
        views, unreachable = await self.chat.files.send_many(others, path, group.id)
        if not views:
            raise PeerUnreachable(f"the file went to no member of {group.roster.name}: see the log")
        return {"group": group.id, "name": views[0]["name"], "size": views[0]["size"], "files": views,
                "unreachable": unreachable}

    def read(self, ref: str, after: int = 0, *, mark: bool = True) -> list[dict]:
        """The group's messages with an id above ``after`` (marks them read here unless ``mark`` is
        false; no receipts)."""
        group = self._find(ref)
        views = [{**m.view(), "group": group.id} for m in group.conv.after(after)]
        if mark:
            group.conv.mark_read()
        return views

    def listing(self) -> list[dict]:
        """Every group this node is in (no message text); invitations are :meth:`invitations`."""
        return [self.view(g) for g in sorted(self.groups.values(), key=lambda g: (g.roster.name, g.id))]

    def view(self, group: Group) -> dict:
        """A group's summary (no message text); ``invited``: the creator's open invitations."""
        r = group.roster
        invited = list(group.invited) if r.creator == self.me else []     # in the order invited
        return {"group": r.group, "name": r.name, "creator": r.creator, "creator_is_me": r.creator == self.me,
                "version": r.version, "members": list(r.members), "invited": invited,
                "names": self._names([*r.members, *invited]),
                "messages": len(group.conv.messages), "unread": group.conv.unread}

    # -- invitations we got --------------------------------------------------------
    def invitations(self) -> list[dict]:
        """The invitations waiting for our answer (or accepted, waiting for the creator's roster)."""
        self.sweep()
        return [self._invitation_view(i) for i in self.invites.pending.values()]

    async def accept(self, ref: str) -> dict:
        """Accept an invitation: tell the creator, who adds us to the roster every member gets.

        Waits (at most JOIN_WAIT s, while the creator is connected) for that roster; ``joined``
        says whether it came (else it comes when the creator is back)."""
        invitation = self._invitation(ref)
        gid, creator = invitation.group, invitation.creator
        if len(self.groups) >= MAX_GROUPS:
            raise BadRequest(f"this node is in {len(self.groups)} groups, its limit: leave one first")
        join = inv.make_join(self.chat.node.identity, gid, invitation.nonce)
        if self._fanout(invitation.roster, proto.Content(proto.GROUP, group=gid, roster=join), [creator]):
            raise PeerUnreachable(f"cannot answer {creator[:12]}, the creator of {invitation.roster.name}: "
                                  f"see the log; the invitation stays open")
        invitation.accepted = True
        self._invitation_event(invitation, "accepted")
        joined = self._joined.setdefault(gid, asyncio.Event())
        if self.chat.connected(creator):
            try:
                await asyncio.wait_for(joined.wait(), JOIN_WAIT)
            except asyncio.TimeoutError:
                pass        # the roster comes later (its link retransmits)
        group = self.groups.get(gid)
        if group is not None:
            return {**self.view(group), "joined": True}
        if self.invites.get(gid) is not invitation:
            raise NoInvitation(f"the invitation to {invitation.roster.name} was withdrawn or expired before "
                               f"its creator added you")
        return {**self._invitation_view(invitation), "joined": False}

    def decline(self, ref: str) -> dict:
        """Decline an invitation: it is forgotten here and its creator is told."""
        invitation = self._invitation(ref)
        self._forget_invitation(invitation, "declined")
        told = not self._fanout(invitation.roster, proto.Content(proto.LEAVE, group=invitation.group),
                                [invitation.creator])
        return {"group": invitation.group, "name": invitation.roster.name, "declined": True, "creator_told": told}

    def sweep(self, now: float | None = None) -> int:
        """Forget every invitation whose time ran out (ours to answer and ours as creator)."""
        now = self.clock() if now is None else now
        gone = self.invites.expire(now)
        for invitation in gone:
            self._forget_invitation(invitation, "invitation_expired", dropped=True)
        return len(gone) + sum(self._expire_sent(group, now) for group in list(self.groups.values()))

    def next_expiry(self) -> float | None:
        """When the next invitation expires (for the chat service's timer loop)."""
        times = [i.expires_at for i in self.invites.pending.values()]
        times += [s.expires_at for g in self.groups.values() for s in g.invited.values()]
        return min(times) if times else None

    # -- incoming ----------------------------------------------------------------
    def on_content(self, peer: str, content: proto.Content) -> None:
        """A group content from ``peer`` (already decrypted on its link); raises a typed refusal."""
        gid = content.group or ""
        if content.kind == proto.GROUP:
            kind = inv.envelope_kind(content.roster)
            if kind == inv.INVITE_KIND:
                return self._on_invite(peer, gid, content.roster)
            if kind == inv.JOIN_KIND:
                return self._on_join(peer, gid, content.roster)
        pending = self.invites.get(gid)
        if content.kind == proto.LEAVE and pending is not None and gid not in self.groups:
            if peer != pending.creator:
                raise NotGroupCreator(f"{peer[:12]} withdrew an invitation to {pending.roster.name} it did not send")
            self._forget_invitation(pending, "invitation_withdrawn")
            return
        if content.roster is not None:
            self._apply(verify_roster(content.roster, gid))
        group = self.groups.get(gid)
        if content.kind == proto.GROUP:
            return                                  # applied above (or older: ignored)
        if group is None:
            if pending is not None:
                raise UnknownGroup(f"{content.kind} from {peer[:12]} for {pending.roster.name}: this node has not "
                                   f"joined it (its invitation is not answered), so nothing of it is shown")
            raise UnknownGroup(f"{content.kind} from {peer[:12]} for group {gid[:12]}, which this node "
                               f"is not in")
        if content.kind == proto.LEAVE and group.roster.creator == self.me and peer in group.invited \
                and peer not in group.roster.members:
            del group.invited[peer]
            self._event(group, "invitation_declined", peer=peer)
            return
        if peer not in group.roster.members:
            raise NotGroupMember(f"{peer[:12]} is not a member of {group.roster.name} (version "
                                 f"{group.roster.version}): its {content.kind} is refused")
        if content.kind == proto.LEAVE:
            if group.roster.creator == self.me:
                self._publish(group, [m for m in group.roster.members if m != peer], action="member_left")
            return
        if content.kind == proto.FILE:
            self.chat.files.on_offer(peer, content.file, group=gid)
            return
        if content.kind != proto.TEXT:
            raise MalformedMessage(f"chat content {content.kind} is not used in groups")
        msg = group.conv.add(peer, content.text, content.ts, outgoing=False, ttl=content.ttl)
        self.chat.node.events.emit(ev.CHAT_MESSAGE, peer=peer, id=msg.id, direction="in", group=gid)

    def on_state(self, tag: GroupTag, state: str) -> bool:
        """A copy of our group message reached a state on one member's link; True if the message's
        state changed (sent at the first copy out, delivered once every member has it)."""
        group = self.groups.get(tag.group)
        if group is None:
            return False
        if state == SENT:
            return group.conv.advance(tag.msg_id, SENT)
        if state != DELIVERED:
            return False                            # read receipts are not gathered for groups
        waiting = group.pending.get(tag.msg_id)
        if waiting is None:
            return False
        waiting.discard(tag.member)
        if waiting:
            return False
        del group.pending[tag.msg_id]
        return group.conv.advance(tag.msg_id, DELIVERED)

    def _on_invite(self, peer: str, gid: str, envelope: dict) -> None:
        """An invitation to a group: kept (bounded, until it expires) for the person to answer."""
        now = self.clock()
        invitation = inv.open_invite(envelope, peer, self.me, lambda env: verify_roster(env, gid), now)
        if gid in self.groups:
            return                                  # a late copy: we are in it already
        if self.me in invitation.roster.members:
            raise MalformedMessage(f"an invitation to {invitation.roster.name} that lists this node as a member")
        self.sweep(now)
        before = self.invites.get(gid)
        if before is not None and before.nonce == invitation.nonce:
            return                                  # a copy of one we have
        self.invites.add(invitation)                # raises TooManyInvitations
        self._joined.pop(gid, None)
        self.chat.wake_expiry()
        log.info("group invitation to %s from %s", invitation.roster.name, peer[:12])
        self._invitation_event(invitation, "invitation")

    def _on_join(self, peer: str, gid: str, envelope: dict) -> None:
        """As creator: ``peer`` accepted our invitation; the next roster lists it."""
        group = self.groups.get(gid)
        if group is None or group.roster.creator != self.me:
            raise NotGroupCreator(f"{peer[:12]} accepted an invitation to group {gid[:12]}, which this node did "
                                  f"not create (or closed)")
        nonce = inv.open_join(envelope, peer, gid)
        name = group.roster.name
        if peer in group.roster.members:            # a repeat: it may have missed the roster
            self._fanout(group.roster, proto.Content(proto.GROUP, group=gid, roster=group.roster.envelope), [peer])
            return
        sent = group.invited.get(peer)
        if sent is None or sent.nonce != nonce:
            raise NoInvitation(f"{peer[:12]} accepted an invitation to {name} that is not open (never sent, "
                               f"withdrawn, declined or replaced)")
        if sent.expires_at <= self.clock():
            del group.invited[peer]
            self._fanout(group.roster, proto.Content(proto.LEAVE, group=gid), [peer])
            self._event(group, "invitation_expired", peer=peer)
            raise InvitationExpired(f"{peer[:12]} accepted the invitation to {name} after it expired "
                                    f"(it was told)")
        del group.invited[peer]
        self._publish(group, [*group.roster.members, peer], action="member_joined", peer=peer)

    # -- inside --------------------------------------------------------------------
    def _apply(self, roster: Roster) -> None:
        """Adopt a newer roster; one that drops us (or closes the group) wipes the group here.

        One that lists us for a group we are not in is adopted only if the person accepted
        its invitation."""
        group = self.groups.get(roster.group)
        if group is not None and roster.version <= group.roster.version:
            return
        if roster.closed or self.me not in roster.members:
            if group is not None:
                self._drop(group, "closed" if roster.closed else "removed")
            return
        if group is None:
            pending = self.invites.get(roster.group)
            if pending is None or not pending.accepted:
                raise NoInvitation(f"a membership of {roster.name} from {roster.creator[:12]} lists this node, "
                                   f"which did not accept an invitation to it: refused")
            if len(self.groups) >= MAX_GROUPS:
                raise BadRequest(f"this node is in {len(self.groups)} groups, its limit: the membership of "
                                 f"{roster.name} is refused")
            self.invites.pop(roster.group)
            group = self.groups[roster.group] = Group(roster, Conversation(roster.group, self.me))
            self._event(group, "joined")
            joined = self._joined.pop(roster.group, None)
            if joined is not None:
                joined.set()
            return
        before = set(group.roster.members)
        group.roster = roster
        for waiting in group.pending.values():
            waiting &= set(roster.members)
        self._event(group, "members", added=sorted(set(roster.members) - before),
                    removed=sorted(before - set(roster.members)))

    def _publish(self, group: Group, members: list[str], *, notify: tuple[str, ...] = (),
                 closed: bool = False, action: str, **extra) -> dict:
        """As creator: sign the next roster, adopt it and send it to every member (and ``notify``)."""
        r = group.roster
        body = {"g": r.group, "salt": r.salt, "name": r.name, "v": r.version + 1, "members": members,
                "closed": closed}
        roster = verify_roster(seal(self.chat.node.identity, KIND, body), r.group)
        group.roster = roster
        for waiting in group.pending.values():
            waiting &= set(members)
        targets = [m for m in dict.fromkeys([*r.members, *members, *notify]) if m != self.me]
        unreachable = self._fanout(roster, proto.Content(proto.GROUP, group=r.group, roster=roster.envelope),
                                   targets)
        self._event(group, action, **extra)
        return {**self.view(group), "unreachable": unreachable}

    def _invite(self, group: Group, peer: str) -> bool:
        """As creator: send ``peer`` an invitation; False if it cannot go (our policy, a closing link)."""
        expires = self.clock() + inv.INVITE_TTL
        envelope = inv.make_invite(self.chat.node.identity, group.roster, peer, expires)
        group.invited[peer] = Sent(envelope["nonce"], float(int(expires)))
        if self._fanout(group.roster, proto.Content(proto.GROUP, group=group.id, roster=envelope), [peer]):
            del group.invited[peer]
            return False
        self.chat.wake_expiry()
        self._event(group, "invited", peer=peer)
        return True

    def _expire_sent(self, group: Group, now: float | None = None) -> int:
        """As creator: forget our invitations nobody answered in time."""
        now = self.clock() if now is None else now
        gone = [peer for peer, sent in group.invited.items() if sent.expires_at <= now]
        for peer in gone:
            del group.invited[peer]
            self._event(group, "invitation_expired", peer=peer)
        return len(gone)

    def _invitation(self, ref: str) -> Invitation:
        """An open invitation by group id, prefix or name; an expired one is forgotten and refused."""
        invitation = self.invites.find(ref)
        if invitation.expires_at <= self.clock():
            self._forget_invitation(invitation, "invitation_expired")
            raise InvitationExpired(f"the invitation to {invitation.roster.name} expired at "
                                    f"{invitation.view()['expires_at']}; ask its creator for a new one")
        return invitation

    def _forget_invitation(self, invitation: Invitation, action: str, dropped: bool = False) -> None:
        if not dropped:
            self.invites.pop(invitation.group)
        waiting = self._joined.pop(invitation.group, None)
        if waiting is not None:
            waiting.set()                            # an `accept` waiting for it hears it is gone
        self._invitation_event(invitation, action)

    def _invitation_view(self, invitation: Invitation) -> dict:
        return {**invitation.view(), "names": self._names(invitation.roster.members)}

    def _invitation_event(self, invitation: Invitation, action: str) -> None:
        r = invitation.roster
        self.chat.node.events.emit(ev.CHAT_GROUP, group=r.group, name=r.name, action=action, version=r.version,
                                   members=list(r.members), creator=r.creator,
                                   expires_at=invitation.view()["expires_at"])
        self.chat.changed_soon()

    def _fanout(self, roster: Roster, content: proto.Content, members, msg_id: int | None = None) -> list[str]:
        """Queue ``content`` on each member's link; returns the members it could not go to."""
        payload = proto.encode_content(content)
        unreachable = []
        for member in members:
            if member == self.me:
                continue
            try:
                self.chat.check_peer(member)
                link = self.chat.link_for(member)
                if link.closing:
                    raise OutboxFull(f"the conversation with {member[:12]} is being closed")
                link.queue(payload, tag=None if msg_id is None else GroupTag(roster.group, msg_id, member))
            except CoveyError as exc:
                log.warning("group %s: nothing goes to %s: %s", roster.name, member[:12], exc)
                unreachable.append(member)
        return unreachable

    def _drop(self, group: Group, action: str) -> None:
        self.groups.pop(group.id, None)
        self.chat.files.drop_group(group.id)
        group.conv.wipe()
        group.pending.clear()
        group.invited.clear()
        self._event(group, action)

    def _event(self, group: Group, action: str, **extra) -> None:
        r = group.roster
        self.chat.node.events.emit(ev.CHAT_GROUP, group=r.group, name=r.name, action=action,
                                   version=r.version, members=list(r.members), **extra)
        self.chat.changed_soon()

    def _names(self, peers) -> dict:
        names = {}
        for peer in peers:
            rec = self.chat.node.peers.get(peer)
            names[peer] = "me" if peer == self.me else (rec.name if rec else "")
        return names

    def _resolve(self, ref: str) -> str:
        return self.chat.node.resolve(ref).id

    def _members(self, refs: list[str]) -> list[str]:
        """Peer ids for ``refs``: peers we may chat with, not us, at most MAX_MEMBERS - 1."""
        if not refs or len(refs) >= MAX_MEMBERS:
            raise BadRequest(f"a group has 1 to {MAX_MEMBERS - 1} other members")
        peers = list(dict.fromkeys(self._resolve(r) for r in refs))
        if self.me in peers:
            raise BadRequest("you are in the group already (as its creator)")
        for peer in peers:
            self.chat.check_peer(peer)
        return peers

    def _find(self, ref: str) -> Group:
        """A group by id, unique id prefix or name."""
        if not isinstance(ref, str) or not ref:
            raise BadRequest("name a group by its id or name")
        found = self.groups.get(ref)
        if found is not None:
            return found
        matches = [g for g in self.groups.values() if g.id.startswith(ref) or g.roster.name == ref]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            invited = [i for i in self.invites.pending.values() if i.group.startswith(ref) or i.roster.name == ref]
            if invited:
                raise UnknownGroup(f"you are invited to {invited[0].roster.name} but not in it: `covey chat group "
                                   f"accept {ref}` first (or decline it)")
            raise UnknownGroup(f"no group {ref!r} here; see `covey chat group list`")
        raise BadRequest(f"{ref!r} names {len(matches)} groups: give more of the id")

    def _mine(self, ref: str) -> Group:
        group = self._find(ref)
        if group.roster.creator != self.me:
            raise NotGroupCreator(f"only the creator of {group.roster.name} changes its members")
        return group
