"""Group invitations: the creator invites, the invited peer accepts or declines.

An invitation is an envelope signed by the group's creator (kind
``chat-group-invite``, body ``{"roster", "invitee", "expires"}``): the group's
current roster (so the invited peer sees its name and members before it
answers), whom it invites and until when (unix seconds). It travels in a
``group`` content like a roster. The invited node keeps it in a bounded table
(:class:`Invitations`, memory only) and is *not* a member: nothing of the group
is shown or accepted until the person accepts.

Accepting sends the creator a ``chat-group-join`` envelope signed by the
invited peer (body ``{"g", "invite"}``: the group and the invitation's nonce);
the creator then signs the next roster with the peer in it, which every member
gets, so every member keeps seeing the same list. Declining sends a ``leave``
for the group to its creator; the creator withdrawing an invitation (or
refusing a late answer) sends a ``leave`` to the invited peer.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from core.errors import InvalidSignature, MalformedMessage
from core.signed import seal, verify_only

from core.chat.errors import (ForgedSender, InvitationExpired, NoInvitation, NotGroupCreator, TooManyInvitations,
                              UnknownGroup)

INVITE_KIND = "chat-group-invite"
JOIN_KIND = "chat-group-join"
INVITE_TTL = 24 * 3600          # how long an invitation we send stays open
MAX_INVITE_TTL = 7 * 24 * 3600  # the longest we keep one we got, whatever it says
MAX_INVITATIONS = 32            # invitations waiting for an answer here, in all
MAX_PER_CREATOR = 4             # ... from one creator (a flood from one peer cannot fill the table)
_INVITE = frozenset({"roster", "invitee", "expires"})
_JOIN = frozenset({"g", "invite"})


def envelope_kind(envelope: dict) -> str:
    """The kind a group content's signed envelope claims (checked again when verified)."""
    kind = envelope.get("kind")
    return kind if isinstance(kind, str) else ""


@dataclass
class Invitation:
    """An invitation this node got and has not answered (or whose acceptance is on its way)."""
    roster: object                 # core.chat.groups.Roster: the group as the creator showed it
    nonce: bytes
    expires_at: float
    received_at: float
    accepted: bool = False

    @property
    def group(self) -> str:
        return self.roster.group

    @property
    def creator(self) -> str:
        return self.roster.creator

    def view(self) -> dict:
        r = self.roster
        return {"group": r.group, "name": r.name, "creator": r.creator, "members": list(r.members),
                "version": r.version, "received_at": _iso(self.received_at), "expires_at": _iso(self.expires_at),
                "accepted": self.accepted}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def make_invite(identity, roster, invitee: str, expires_at: float) -> dict:
    """The creator's signed invitation of ``invitee`` to the group of ``roster``."""
    return seal(identity, INVITE_KIND, {"roster": roster.envelope, "invitee": invitee, "expires": int(expires_at)})


def open_invite(envelope, sender: str, me: str, verify_roster, now: float) -> Invitation:
    """Check an invitation that ``sender`` sent to us; raises a typed refusal saying why.

    ``verify_roster`` is :func:`core.chat.groups.verify_roster`."""
    try:
        signer, body = verify_only(envelope, INVITE_KIND)
    except InvalidSignature as exc:
        raise NotGroupCreator(f"group invitation refused: {exc}") from None
    if set(body) != _INVITE:
        raise MalformedMessage("group invitation has missing or unexpected fields")
    roster = verify_roster(body["roster"])
    if roster.creator != signer:
        raise NotGroupCreator(f"invitation to {roster.name} is signed by {signer[:12]}, who did not create it")
    if sender != signer:
        raise NotGroupCreator(f"invitation to {roster.name} came from {sender[:12]}, not from its creator "
                              f"{signer[:12]}")
    if body["invitee"] != me:
        raise MalformedMessage(f"invitation to {roster.name} names another peer")
    expires = body["expires"]
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise MalformedMessage("group invitation: bad expiry")
    if expires <= now:
        raise InvitationExpired(f"invitation to {roster.name} arrived expired")
    if roster.closed:
        raise UnknownGroup(f"invitation to {roster.name}, which its creator closed")
    return Invitation(roster, envelope["nonce"], min(float(expires), now + MAX_INVITE_TTL), now)


def make_join(identity, group: str, invite_nonce: bytes) -> dict:
    """Our signed acceptance of the invitation ``invite_nonce`` to ``group``."""
    return seal(identity, JOIN_KIND, {"g": group, "invite": invite_nonce})


def open_join(envelope, sender: str, group: str) -> bytes:
    """Check an acceptance ``sender`` sent for ``group``; returns the invitation nonce it answers."""
    try:
        signer, body = verify_only(envelope, JOIN_KIND)
    except InvalidSignature as exc:
        raise ForgedSender(f"group acceptance refused: {exc}") from None
    if signer != sender:
        raise ForgedSender(f"an acceptance signed by {signer[:12]} came from {sender[:12]}")
    if set(body) != _JOIN or body["g"] != group or not isinstance(body["invite"], bytes):
        raise MalformedMessage("group acceptance has missing, unexpected or mismatched fields")
    return body["invite"]


class Invitations:
    """The invitations this node got, bounded in all and per creator; memory only."""

    def __init__(self) -> None:
        self.pending: OrderedDict[str, Invitation] = OrderedDict()

    def __len__(self) -> int:
        return len(self.pending)

    def clear(self) -> None:
        self.pending.clear()

    def get(self, group: str) -> Invitation | None:
        return self.pending.get(group)

    def pop(self, group: str) -> Invitation | None:
        return self.pending.pop(group, None)

    def add(self, inv: Invitation) -> bool:
        """Keep ``inv`` (a newer invitation to the same group replaces the older); True if new.

        Raises TooManyInvitations when its creator, or everyone, has filled the table."""
        if inv.group in self.pending:
            self.pending[inv.group] = inv
            return False
        from_creator = sum(1 for p in self.pending.values() if p.creator == inv.creator)
        if from_creator >= MAX_PER_CREATOR:
            raise TooManyInvitations(f"{from_creator} invitations from {inv.creator[:12]} wait for an answer "
                                     f"already: the one to {inv.roster.name} is refused")
        if len(self.pending) >= MAX_INVITATIONS:
            raise TooManyInvitations(f"{len(self.pending)} group invitations wait for an answer already: the "
                                     f"one to {inv.roster.name} is refused")
        self.pending[inv.group] = inv
        return True

    def expire(self, now: float) -> list[Invitation]:
        """Drop and return every invitation whose time ran out."""
        gone = [inv for inv in self.pending.values() if inv.expires_at <= now]
        for inv in gone:
            del self.pending[inv.group]
        return gone

    def find(self, ref: str) -> Invitation:
        """An invitation by group id, unique id prefix or name (expired or not); raises NoInvitation."""
        if not isinstance(ref, str) or not ref:
            raise NoInvitation("name an invitation by its group id or name; see `covey chat group invitations`")
        found = self.pending.get(ref)
        if found is not None:
            return found
        matches = [i for i in self.pending.values() if i.group.startswith(ref) or i.roster.name == ref]
        if len(matches) > 1:
            raise NoInvitation(f"{ref!r} names {len(matches)} invitations: give more of the group id")
        if not matches:
            raise NoInvitation(f"no invitation to a group {ref!r} here (never invited, declined, withdrawn or "
                               f"expired); see `covey chat group invitations`")
        return matches[0]
