"""A conversation's messages, in memory only, with its disappearing timer.

A :class:`Conversation` is what the user sees: a bounded list of
:class:`ChatMessage` (oldest dropped past ``max_messages``), the timer both
sides honour, the read mark and the peer's typing state. It knows nothing
about keys or the network: a one-to-one conversation is fed by one pairwise
link, a group conversation (next round) by the links to each member, so the
same class serves both (``key`` is the peer id or the group id).

Nothing here can be serialised to disk: messages are plain objects that no
code path writes anywhere; :meth:`Conversation.wipe` drops them all.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from core.chat.protocol import TIMER_NAMES

MAX_MESSAGES = 2000   # per conversation; the oldest leave first

# Message states: outgoing queued -> sent -> delivered -> read (failed: refused for good);
# incoming received -> read.
QUEUED, SENT, DELIVERED, READ, FAILED, RECEIVED = "queued", "sent", "delivered", "read", "failed", "received"
_RANK = {QUEUED: 0, SENT: 1, DELIVERED: 2, READ: 3}


@dataclass
class ChatMessage:
    """One message of a conversation (memory only)."""
    id: int
    author: str            # peer id of who wrote it (this node's id for our own)
    text: str
    sent_at: float         # the author's clock
    outgoing: bool
    state: str
    expires_at: float | None = None

    def __reduce_ex__(self, protocol):
        raise TypeError("chat messages stay in memory: they cannot be pickled")

    def view(self) -> dict:
        """The JSON shape of ``covey chat read --json``."""
        return {"id": self.id, "from": self.author, "text": self.text, "sent_at": _iso(self.sent_at),
                "state": self.state, "outgoing": self.outgoing,
                "expires_at": _iso(self.expires_at) if self.expires_at is not None else None}


class Conversation:
    """See the module docstring."""

    def __init__(self, key: str, me: str, *, max_messages: int = MAX_MESSAGES):
        self.key = key
        self.me = me
        self.max_messages = max_messages
        self.messages: "OrderedDict[int, ChatMessage]" = OrderedDict()
        self.ttl = 0                 # seconds; 0: off
        self.timer_set_by: str | None = None
        self.peer_typing = False
        self.read_upto = 0           # ids of incoming messages up to this were read
        self._next_id = 1

    def __repr__(self) -> str:
        return f"Conversation({self.key[:16]}..., {len(self.messages)} messages)"

    def __reduce_ex__(self, protocol):
        raise TypeError("a conversation stays in memory: it cannot be pickled")

    @property
    def timer(self) -> str:
        return TIMER_NAMES.get(self.ttl, "off")

    def add(self, author: str, text: str, sent_at: float, *, outgoing: bool, ttl: int,
            now: float | None = None) -> ChatMessage:
        """Append a message; with ``ttl`` it disappears ``ttl`` seconds after it arrived here."""
        now = time.time() if now is None else now
        msg = ChatMessage(self._next_id, author, text, sent_at, outgoing, QUEUED if outgoing else RECEIVED,
                          now + ttl if ttl else None)
        self._next_id += 1
        self.messages[msg.id] = msg
        while len(self.messages) > self.max_messages:
            self.messages.popitem(last=False)
        return msg

    def advance(self, msg_id: int, state: str) -> bool:
        """Move an outgoing message forward (never back); True if its state changed."""
        msg = self.messages.get(msg_id)
        if msg is None or not msg.outgoing:
            return False
        if state == FAILED or _RANK.get(state, -1) > _RANK.get(msg.state, -1):
            if msg.state != state:
                msg.state = state
                return True
        return False

    def mark_read(self) -> list[int]:
        """The user has seen every message: incoming ones become read; returns their ids."""
        changed = [m.id for m in self.messages.values() if not m.outgoing and m.state == RECEIVED]
        for msg_id in changed:
            self.messages[msg_id].state = READ
        if self.messages:
            self.read_upto = next(reversed(self.messages))
        return changed

    @property
    def unread(self) -> int:
        return sum(1 for m in self.messages.values() if not m.outgoing and m.state == RECEIVED)

    def expire(self, now: float) -> list[int]:
        """Drop every message whose timer ran out; returns their ids."""
        gone = [m.id for m in self.messages.values() if m.expires_at is not None and m.expires_at <= now]
        for msg_id in gone:
            del self.messages[msg_id]
        return gone

    def next_expiry(self) -> float | None:
        times = [m.expires_at for m in self.messages.values() if m.expires_at is not None]
        return min(times) if times else None

    def after(self, msg_id: int) -> list[ChatMessage]:
        return [m for m in self.messages.values() if m.id > msg_id]

    def wipe(self) -> None:
        """Forget every message (close)."""
        self.messages.clear()
        self.peer_typing = False
        self.read_upto = 0
        self.ttl = 0
        self.timer_set_by = None


_second: list = [None, ""]    # the last whole second formatted (messages come in runs)


def _iso(ts: float) -> str:
    """``datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")``, with the
    whole second's text reused from the previous call (it is most of the cost)."""
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)        # as datetime rounds a timestamp: half to even, in microseconds
    if micros >= 1_000_000:
        whole, micros = whole + 1.0, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1.0, micros + 1_000_000
    if _second[0] != whole:
        _second[1] = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = whole
    return f"{_second[1]}.{micros // 1000:03d}+00:00"
