"""Group chat: named groups whose messages fan out over the pairwise links.

A group has a creator, the one authority on who is in it. Its membership (a
*roster*) is an envelope signed by the creator (:func:`core.signed.seal`, kind
``chat-group``, body ``{"g", "salt", "name", "v", "members", "closed"}``); the
group id is ``sha256(creator id | salt)`` (32 hex digits), so only the
creator can sign a roster for it. Each change (invite, remove, a member
leaving) is a new roster with the next version ``v``; members apply only a
newer one, so every member converges on the creator's latest list. The
creator sends each new roster (content ``group``) to every member, and to a
removed one (which then wipes the group); every group text carries the roster
its author holds, so a member that missed the creator's copy catches up from
any message.

A text goes to every other member of the current roster over their links:
a member who left or was removed is no longer sent anything, and a message
from someone not in the receiver's current roster is refused. Every pair of
members must allow each other to chat (their links carry the messages).

Memory only, as one-to-one chat: leaving (or being removed) wipes the group.
The creator leaving closes the group for everyone.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from core import events as ev
from core.errors import BadRequest, CoveyError, InvalidSignature, MalformedMessage
from core.identity import is_peer_id
from core.signed import seal, verify_only

from core.chat import protocol as proto
from core.chat.conversation import DELIVERED, SENT, Conversation
from core.chat.errors import NotGroupCreator, NotGroupMember, OutboxFull, UnknownGroup

log = logging.getLogger("covey.chat.groups")

KIND = "chat-group"
MAX_MEMBERS = 50          # including the creator (fan-out is pairwise: tens of members)
MAX_GROUPS = 64           # groups this node is in at once
MAX_NAME = 64
SALT = 16
_ROSTER = frozenset({"g", "salt", "name", "v", "members", "closed"})


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


@dataclass
class Group:
    """A group this node is in (memory only)."""
    roster: Roster
    conv: Conversation
    pending: "OrderedDict[int, set[str]]" = field(default_factory=OrderedDict)  # msg id -> not delivered to

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
    """The groups of one node; ``chat`` is the ChatService (links, policy, events)."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.groups: dict[str, Group] = {}

    @property
    def me(self) -> str:
        return self.chat.node.identity.id

    def wipe(self) -> None:
        for group in self.groups.values():
            group.conv.wipe()
        self.groups.clear()

    # -- the API -----------------------------------------------------------------
    def create(self, name: str, refs: list[str]) -> dict:
        """Create a group with the given peers; the creator (us) is its authority."""
        name = clean_name(name)
        if len(self.groups) >= MAX_GROUPS:
            raise BadRequest(f"this node is in {len(self.groups)} groups, its limit")
        members = self._members(refs)
        salt = os.urandom(SALT)
        gid = group_id(self.me, salt)
        body = {"g": gid, "salt": salt, "name": name, "v": 1, "members": [self.me, *members], "closed": False}
        roster = verify_roster(seal(self.chat.node.identity, KIND, body), gid)
        group = self.groups[gid] = Group(roster, Conversation(gid, self.me))
        self._event(group, "created")
        unreachable = self._fanout(group, proto.Content(proto.GROUP, group=gid, roster=roster.envelope), members)
        return {**self.view(group), "unreachable": unreachable}

    def invite(self, ref: str, peer_ref: str) -> dict:
        group = self._mine(ref)
        peer = self._members([peer_ref])[0]
        if peer in group.roster.members:
            raise BadRequest(f"{peer[:12]} is already in {group.roster.name}")
        if len(group.roster.members) >= MAX_MEMBERS:
            raise BadRequest(f"a group has at most {MAX_MEMBERS} members")
        return self._publish(group, [*group.roster.members, peer], notify=(peer,), action="invited")

    def remove(self, ref: str, peer_ref: str) -> dict:
        group = self._mine(ref)
        peer = self._resolve(peer_ref)
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
        else:
            self._fanout(group, proto.Content(proto.LEAVE, group=group.id), [roster.creator])
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
        unreachable = self._fanout(group, content, others, msg.id)
        for member in unreachable:
            group.pending[msg.id].discard(member)
        self.chat.node.events.emit(ev.CHAT_MESSAGE, peer=self.me, id=msg.id, direction="out", group=group.id)
        self.chat.changed_soon()
        return {**msg.view(), "group": group.id, "unreachable": unreachable}

    def read(self, ref: str, after: int = 0) -> list[dict]:
        """The group's messages with an id above ``after`` (marks them read here; no receipts)."""
        group = self._find(ref)
        views = [{**m.view(), "group": group.id} for m in group.conv.after(after)]
        group.conv.mark_read()
        return views

    def listing(self) -> list[dict]:
        """Every group this node is in (no message text)."""
        return [self.view(g) for g in sorted(self.groups.values(), key=lambda g: (g.roster.name, g.id))]

    def view(self, group: Group) -> dict:
        """A group's summary (no message text)."""
        r = group.roster
        names = {}
        for member in r.members:
            rec = self.chat.node.peers.get(member)
            names[member] = "me" if member == self.me else (rec.name if rec else "")
        return {"group": r.group, "name": r.name, "creator": r.creator, "creator_is_me": r.creator == self.me,
                "version": r.version, "members": list(r.members), "names": names,
                "messages": len(group.conv.messages), "unread": group.conv.unread}

    # -- incoming ----------------------------------------------------------------
    def on_content(self, peer: str, content: proto.Content) -> None:
        """A group content from ``peer`` (already decrypted on its link); raises a typed refusal."""
        gid = content.group or ""
        if content.roster is not None:
            self._apply(verify_roster(content.roster, gid))
        group = self.groups.get(gid)
        if content.kind == proto.GROUP:
            return                                  # applied above (or older: ignored)
        if group is None:
            raise UnknownGroup(f"{content.kind} from {peer[:12]} for group {gid[:12]}, which this node "
                               f"is not in")
        if peer not in group.roster.members:
            raise NotGroupMember(f"{peer[:12]} is not a member of {group.roster.name} (version "
                                 f"{group.roster.version}): its {content.kind} is refused")
        if content.kind == proto.LEAVE:
            if group.roster.creator == self.me:
                self._publish(group, [m for m in group.roster.members if m != peer], action="member_left")
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

    # -- inside --------------------------------------------------------------------
    def _apply(self, roster: Roster) -> None:
        """Adopt a newer roster; one that drops us (or closes the group) wipes the group here."""
        group = self.groups.get(roster.group)
        if group is not None and roster.version <= group.roster.version:
            return
        if roster.closed or self.me not in roster.members:
            if group is not None:
                self._drop(group, "closed" if roster.closed else "removed")
            return
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                raise BadRequest(f"this node is in {len(self.groups)} groups, its limit: the invitation to "
                                 f"{roster.name} is refused")
            group = self.groups[roster.group] = Group(roster, Conversation(roster.group, self.me))
            self._event(group, "joined")
            return
        before = set(group.roster.members)
        group.roster = roster
        for waiting in group.pending.values():
            waiting &= set(roster.members)
        self._event(group, "members", added=sorted(set(roster.members) - before),
                    removed=sorted(before - set(roster.members)))

    def _publish(self, group: Group, members: list[str], *, notify: tuple[str, ...] = (),
                 closed: bool = False, action: str) -> dict:
        """As creator: sign the next roster, adopt it and send it to every member (and ``notify``)."""
        r = group.roster
        body = {"g": r.group, "salt": r.salt, "name": r.name, "v": r.version + 1, "members": members,
                "closed": closed}
        roster = verify_roster(seal(self.chat.node.identity, KIND, body), r.group)
        group.roster = roster
        for waiting in group.pending.values():
            waiting &= set(members)
        targets = [m for m in dict.fromkeys([*r.members, *members, *notify]) if m != self.me]
        unreachable = self._fanout(group, proto.Content(proto.GROUP, group=r.group, roster=roster.envelope),
                                   targets)
        self._event(group, action)
        return {**self.view(group), "unreachable": unreachable}

    def _fanout(self, group: Group, content: proto.Content, members, msg_id: int | None = None) -> list[str]:
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
                link.queue(payload, tag=None if msg_id is None else GroupTag(group.id, msg_id, member))
            except CoveyError as exc:
                log.warning("group %s: nothing goes to %s: %s", group.roster.name, member[:12], exc)
                unreachable.append(member)
        return unreachable

    def _drop(self, group: Group, action: str) -> None:
        self.groups.pop(group.id, None)
        group.conv.wipe()
        group.pending.clear()
        self._event(group, action)

    def _event(self, group: Group, action: str, **extra) -> None:
        r = group.roster
        self.chat.node.events.emit(ev.CHAT_GROUP, group=r.group, name=r.name, action=action,
                                   version=r.version, members=list(r.members), **extra)
        self.chat.changed_soon()

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
            raise UnknownGroup(f"no group {ref!r} here; see `covey chat group list`")
        raise BadRequest(f"{ref!r} names {len(matches)} groups: give more of the id")

    def _mine(self, ref: str) -> Group:
        group = self._find(ref)
        if group.roster.creator != self.me:
            raise NotGroupCreator(f"only the creator of {group.roster.name} changes its members")
        return group

