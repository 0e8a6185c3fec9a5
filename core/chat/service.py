"""The chat service: end-to-end encrypted, ephemeral one-to-one chat between peers.

Reached as ``node.service("chat")``. Conversations, sessions and message keys
live in this object's memory only; the store holds nothing but verified
contacts and peers' public prekey bundles (:mod:`core.chat.db`) and two
preferences (read receipts, typing);
the home holds the prekeys' private halves (:mod:`core.chat.x3dh_adapter`).
A restarted node starts new sessions and shows empty conversations.

Who may do what is the policy table's: CORE, SANDBOX and EXTERNAL peers chat
(``Capability.CHAT``); an UNKNOWN peer may only send a contact request
(``Capability.CONTACT_REQUEST``), which the user accepts (the peer becomes
EXTERNAL) or refuses. The node checks the sender's capability before any
handler here runs; sending, we check our own policy for the peer.

API for surfaces (the GUI tab, the commands): every method takes one peer
and answers about that conversation only.

- ``await send(peer, text)`` -> message view; ``read(peer, after=0)`` -> views
  (marks them read); ``await wait_messages(peer, after, timeout)``;
  ``conversations()``; ``conversation(peer)``; ``close(peer)``;
  ``set_timer(peer, name)``; ``verify(peer, mark)``; ``qr_png(peer)``;
  ``await typing(peer, on)``; ``requests()``; ``await request(peer, text)``;
  ``accept(peer)``; ``refuse(peer)``; ``settings(read_receipts=, typing=)``.

Events (``node.events``; none carries message text: read it from the service):

- ``chat_message`` {peer, id, direction: "in"|"out"}
- ``chat_state`` {peer, id, state: sent|delivered|read|failed}
- ``chat_typing`` {peer, typing}
- ``chat_timer`` {peer, timer, by: "me"|"peer"}
- ``chat_closed`` {peer, by: "me"|"peer"|"both"}
- ``chat_expired`` {peer, ids}
- ``chat_request`` {peer, name} (a contact request; its text via ``requests()``)
- ``chat_key_changed`` {peer, verified_peer, name}
- ``chat_verified`` {peer, retired}: the user marked the peer verified (``retired``: contacts
  of other keys under its name or address, no longer verified).
- ``message_rejected`` {peer, type, code, reason} for every refused chat input.
- ``chat_file`` {peer, file, state, done, total, direction}: files, see ``self.files``
  (:mod:`core.chat.files`).
- ``chat_group`` {group, name, action, version, members} (an invitation's also {creator,
  expires_at}; see :mod:`core.chat.groups`); group messages are
  ``chat_message`` {peer: the author, group, id, direction}; their states ``chat_state``
  {group, id, state} (no peer) (:mod:`core.chat.groups`).

Offline delivery through a CORE peer's mailbox: :mod:`core.chat.mailbox`
(``self.mailbox``); groups: :mod:`core.chat.groups` (``self.groups``).
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time

from core import events as ev
from core.events import (CHAT_CLOSED, CHAT_EXPIRED, CHAT_KEY_CHANGED, CHAT_MESSAGE, CHAT_REQUEST, CHAT_STATE,
                         CHAT_TIMER, CHAT_TYPING, CHAT_VERIFIED)
from core.errors import CoveyError, PeerUnreachable, UnknownPeer
from core.net.limits import LogLimiter
from core.peers import Capability, Tier

from core.chat import protocol as proto
from core.chat.conversation import DELIVERED, READ, SENT, Conversation
from core.chat.db import MIGRATIONS, Contacts
from core.chat.errors import ConversationClosing, KeyChanged, OutboxFull
from core.chat.files import Files
from core.chat.groups import GroupTag, Groups
from core.chat.link import OUTBOX, Link
from core.chat.mailbox import Mailbox
from core.chat.requests import Requests
from core.chat.safety import grouped, qr_png, safety_number
from core.chat.x3dh_adapter import ChatKeys

log = logging.getLogger("covey.chat")

SETTING_RECEIPTS = "chat.read_receipts"
SETTING_TYPING = "chat.typing"
TYPING_REPEAT = 3.0       # seconds between two "typing" frames while the user types
MAX_WAIT = 60.0           # longest read(..., wait=) a command may ask for
MAX_REFS = 64             # peer names/prefixes remembered as resolved (see _peer)
SKIPPED_SWEEP = 60.0      # seconds between two looks for skipped message keys past their time


class ChatService:
    """See the module docstring."""

    name = "chat"
    migrations = MIGRATIONS

    def __init__(self, node) -> None:
        self.node = node
        self.keys: ChatKeys | None = None
        self.contacts: Contacts | None = None
        self.links: dict[str, Link] = {}
        self.conversations: dict[str, Conversation] = {}
        self.inbox = Requests()
        self.read_receipts = True
        self.typing_enabled = True
        self._typing_sent: dict[str, float] = {}
        self._refs: dict[str, tuple[int, str]] = {}   # ref -> (peer book version, peer id)
        self._log_limit = LogLimiter()
        self._changed = asyncio.Event()     # set (and replaced) whenever a conversation changes ...
        self._waiting = 0                   # ... while this many wait_messages wait on it
        self._expiry_wake = asyncio.Event()
        self._expiry_task: asyncio.Task | None = None
        self._unsubscribe: list = []
        self._stopped = False
        chat = Capability.CHAT
        node.on_message(proto.BUNDLE, self._on_bundle, capability=chat)
        node.on_message(proto.MSG, self._on_msg, capability=chat)
        node.on_message(proto.RESET, self._on_reset, capability=chat)
        node.on_message(proto.REQUEST, self._on_request, capability=Capability.CONTACT_REQUEST)
        self.files = Files(self)
        self.mailbox = Mailbox(self)
        self.groups = Groups(self)

    @property
    def _keys(self) -> ChatKeys:
        if self.keys is None:
            raise PeerUnreachable("the chat service is not started")
        return self.keys

    @property
    def _contacts(self) -> Contacts:
        if self.contacts is None:
            raise PeerUnreachable("the chat service is not started")
        return self.contacts

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self.keys = await asyncio.to_thread(ChatKeys.load_or_create, self.node.home, self.node.identity)
        self.keys.on_agreed = self.mailbox.bundles.spent
        self.contacts = Contacts(self.node.store)
        store = self.node.store
        self.read_receipts = bool(store.get_setting(SETTING_RECEIPTS, True))
        self.typing_enabled = bool(store.get_setting(SETTING_TYPING, True))
        self._expiry_wake.clear()
        self._expiry_task = asyncio.ensure_future(self._expire_loop())
        on = self.node.events.on
        self._unsubscribe = [on(ev.PEER_CONNECTED, self._on_connected),
                             on(ev.PEER_BANNED, self._on_gone), on(ev.PEER_REMOVED, self._on_gone)]
        self.files.start()

    async def stop(self) -> None:
        """Wipe every conversation and key held in memory (idempotent)."""
        self._stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.mailbox.stop()
        self.groups.wipe()
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            await asyncio.gather(self._expiry_task, return_exceptions=True)
        await self.files.stop()
        for link in list(self.links.values()):
            await link.stop()
        self.links.clear()
        for conv in self.conversations.values():
            conv.wipe()
        self.conversations.clear()
        self.inbox.clear()

    # -- policy (used by links too) ----------------------------------------------------
    def connected(self, peer: str) -> bool:
        """Connected, and its tier allows chat (the connection's limits carry the node's policy
        decision, refreshed when the tier changes: cheaper than a peer-book lookup per frame)."""
        conn = self.node.connections.get(peer)
        return conn is not None and not conn.closed and Capability.CHAT in conn.limits.allowed

    def check_peer(self, peer: str) -> bool:
        """Raise unless our policy lets us chat with ``peer`` and its key is not a changed one;
        returns whether it is connected (:meth:`connected`)."""
        online = self.connected(peer)
        if not online:  # connected: its limits hold the same decision (see connected)
            self.node.peers.check(peer, Capability.CHAT)
        contacts = self._contacts
        if not contacts.may_conflict(peer):
            return online
        rec = self.node.peers.get(peer)
        clash = contacts.conflict(peer, rec.name, rec.address)
        if clash is not None:
            self.node.events.emit(CHAT_KEY_CHANGED, peer=peer, verified_peer=clash["peer"], name=clash["name"])
            exc = KeyChanged(
                f"KEY CHANGED: {clash['name'] or clash['address']} was verified with key "
                f"{clash['peer'][:16]}... but {peer[:16]}... now answers under that "
                f"{'name' if clash['name'] and clash['name'] == rec.name else 'address'}: this may be "
                f"someone else. Chat is refused; compare safety numbers in person and run "
                f"`covey chat verify {peer[:16]} --mark` if it really is them", peer=peer)
            log.error("%s", exc)
            raise exc
        return online

    def refused(self, peer: str, msg_type: str, exc: CoveyError) -> None:
        """Log (rate limited per peer) and announce a refused chat input; it never carries text."""
        suppressed = self._log_limit.allow(peer)
        if suppressed is None:
            return
        log.warning("chat: refused %s from %s: %s [%s]%s", msg_type, peer[:12], exc, exc.code,
                    f" ({suppressed} more not logged)" if suppressed else "")
        self.node.events.emit(ev.MESSAGE_REJECTED, peer=peer, type=msg_type, code=exc.code,
                              reason=str(exc), suppressed=suppressed)

    # -- links and conversations ---------------------------------------------------------
    def _link(self, peer: str) -> Link:
        link = self.links.get(peer)
        if link is None:
            link = self.links[peer] = Link(self, self._keys, peer, read_receipts=self.read_receipts)
            link.start()
        return link

    def _conv(self, peer: str) -> Conversation:
        conv = self.conversations.get(peer)
        if conv is None:
            conv = self.conversations[peer] = Conversation(peer, self.node.identity.id)
        return conv

    def _peer(self, ref: str) -> str:
        if ref in self.links:   # a full peer id we chat with (a removed peer's link is dropped)
            return ref
        book = self.node.peers
        known = self._refs.get(ref)
        if known is not None and known[0] == book.version:
            return known[1]     # resolved while the book was as it is now
        peer = self.node.resolve(ref).id
        if len(self._refs) >= MAX_REFS:
            self._refs.clear()
        self._refs[ref] = (book.version, peer)
        return peer

    def link_for(self, peer: str) -> Link:
        """The link to ``peer`` (made and started on first use)."""
        return self._link(peer)

    def _on_connected(self, event) -> None:
        peer = event.data.get("peer") or ""
        link = self.links.get(peer)
        if link is not None:
            link.link_up()
            self.mailbox.keep_spare(link)
        self.mailbox.on_connected(peer)

    async def away(self, link: Link) -> float | None:
        """The link's peer is not connected: leave what waits at a mailbox; returns when to retry."""
        return await self.mailbox.deposit(link)

    def _on_gone(self, event) -> None:
        """A banned or removed peer: its conversation and sessions are wiped."""
        peer = event.data.get("peer") or ""
        link = self.links.pop(peer, None)
        if link is not None:
            asyncio.ensure_future(link.stop())
        conv = self.conversations.pop(peer, None)
        if conv is not None:
            conv.wipe()
        self.files.drop_peer(peer, every=True)
        self.mailbox.bundles.forget(peer)

    def changed_soon(self) -> None:
        self._changed_soon()

    def wake_expiry(self) -> None:
        """Something with a deadline was added (a group invitation): the expiry loop looks again."""
        self._expiry_wake.set()

    def _changed_soon(self) -> None:
        """Wake every ``wait_messages`` (cheap: no task per message, nothing when none waits)."""
        if self._waiting:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    # -- callbacks from links -------------------------------------------------------------
    def on_content(self, link: Link, content: proto.Content) -> None:
        peer = link.peer
        if content.group is not None:
            try:
                self.groups.on_content(peer, content)
            except CoveyError as exc:
                self.refused(peer, f"chat.group.{content.kind}", exc)
            return
        conv = self._conv(peer)
        if content.kind == proto.TEXT:
            msg = conv.add(peer, content.text, content.ts, outgoing=False, ttl=content.ttl)
            conv.peer_typing = False
            self.node.events.emit(CHAT_MESSAGE, peer=peer, id=msg.id, direction="in")
            if msg.expires_at is not None:
                self._expiry_wake.set()
        elif content.kind == proto.TIMER:
            conv.ttl, conv.timer_set_by = content.ttl, peer
            self.node.events.emit(CHAT_TIMER, peer=peer, timer=conv.timer, by="peer")
        elif content.kind == proto.FILE:
            if content.group is None:       # files are one-to-one only
                self.files.on_offer(peer, content.file)
        else:
            conv.wipe()
            self.files.drop_peer(peer)
            self.node.events.emit(CHAT_CLOSED, peer=peer, by="peer")
        self._changed_soon()

    def on_sent(self, link: Link, tags: list) -> None:
        self._advance(tags, SENT)

    def on_delivered(self, link: Link, tags: list) -> None:
        self._advance(tags, DELIVERED)
        self.mailbox.keep_spare(link)   # the peer answered: a spare bundle now carries a fresh prekey

    def on_read(self, link: Link, tags: list) -> None:
        self._advance(tags, READ)

    def _advance(self, tags: list, state: str) -> None:
        emit = self.node.events.emit
        for tag in tags:       # group tags first (their order as before), then one-to-one ones
            if isinstance(tag, GroupTag) and self.groups.on_state(tag, state):
                emit(CHAT_STATE, group=tag.group, id=tag.msg_id, state=state)  # no peer: not 1:1
        for tag in tags:
            if not isinstance(tag, GroupTag):
                peer, msg_id = tag
                conv = self.conversations.get(peer)
                if conv is not None and conv.advance(msg_id, state):
                    emit(CHAT_STATE, peer=peer, id=msg_id, state=state)
        self._changed_soon()

    def on_typing(self, link: Link, on: bool) -> None:
        if not self.typing_enabled:
            return  # off: not shown either way
        conv = self._conv(link.peer)
        if conv.peer_typing != on:
            conv.peer_typing = on
            self.node.events.emit(CHAT_TYPING, peer=link.peer, typing=on)

    def on_link_closed(self, link: Link) -> None:
        self.node.events.emit(CHAT_CLOSED, peer=link.peer, by="both")

    # -- handlers ------------------------------------------------------------------------
    def _on_bundle(self, peer: str, body: dict) -> dict:
        try:
            self.check_peer(peer)
            return {"bundle": self._keys.bundle_for(peer)}
        except CoveyError as exc:
            self.refused(peer, proto.BUNDLE, exc)
            raise

    def _on_msg(self, peer: str, body: dict) -> None:
        # Synchronous, so the node runs it in the reader's turn (no task per message); the
        # decryption never suspends (Link.receive_now), and the reader waits for it to finish.
        try:
            sid, wire = proto.parse_msg(body)
            self._link(peer).receive_now(sid, wire)
        except CoveyError as exc:
            self.refused(peer, proto.MSG, exc)

    def _on_reset(self, peer: str, body: dict) -> None:
        try:
            sid = proto.parse_reset(body)
        except CoveyError as exc:
            self.refused(peer, proto.RESET, exc)
            return
        link = self.links.get(peer)
        if link is not None:
            link.on_reset(sid)

    def _on_request(self, peer: str, body: dict) -> dict:
        try:
            text = proto.clean_request_text(body.get("text"))
            rec = self.node.peers.get(peer)
            conn = self.node.connections.get(peer)
            name = (rec.name if rec is not None else "") or (conn.peer_name if conn is not None else "")
            name = "".join(ch for ch in str(name) if ch.isprintable())[:64]  # it came from the network
            self.inbox.add(peer, name, text)
        except CoveyError as exc:
            self.refused(peer, proto.REQUEST, exc)
            raise
        log.info("contact request from %s (%s)", name or "unnamed", peer[:12])
        self.node.events.emit(CHAT_REQUEST, peer=peer, name=name)
        return {"ok": True}

    # -- the API ------------------------------------------------------------------------
    async def send(self, ref: str, text: str) -> dict:
        """Send ``text`` to the peer; returns the message's view (state queued or sent).

        Waits in memory (retransmitted) while the peer is away; raises when our
        policy refuses the peer, its key changed, or the peer refuses us."""
        text = proto.check_text(text)
        peer = self._peer(ref)
        online: bool | None = self.check_peer(peer)
        link = self._link(peer)
        if link.closing:
            raise ConversationClosing(f"the conversation with {peer[:12]} is being closed; it can start "
                                      f"again once that peer (when connected) has wiped it too")
        if link.out.unacked >= OUTBOX:
            raise OutboxFull(f"{link.out.unacked} messages wait for {peer[:12]}; try later")
        if online:
            if link.needs_bundle:
                await link.ensure_bundle()
                online = None    # it waited for the bundle: push looks again
            self.mailbox.keep_spare(link)
        conv = self._conv(peer)
        msg = conv.add(self.node.identity.id, text, time.time(), outgoing=True, ttl=conv.ttl)
        link.queue(proto.encode_content(proto.Content(proto.TEXT, text, msg.sent_at, conv.ttl)),
                   tag=(peer, msg.id), wake=False)
        self.node.events.emit(CHAT_MESSAGE, peer=peer, id=msg.id, direction="out")
        await link.push(online)    # out now, in this turn (or by the pump, which holds it while away)
        if msg.expires_at is not None:
            self._expiry_wake.set()
        self._changed_soon()
        return {**msg.view(), "peer": peer}

    def read(self, ref: str, after: int = 0, *, mark: bool = True) -> list[dict]:
        """The conversation's messages with an id above ``after``; marks them read (receipts if on)."""
        peer = self._peer(ref)
        conv = self.conversations.get(peer)
        if conv is None:
            return []
        views = [m.view() for m in conv.after(after)]
        if mark and conv.mark_read():
            link = self.links.get(peer)
            if link is not None:
                link.mark_read()
        return views

    async def wait_messages(self, ref: str, after: int, timeout: float) -> list[dict]:
        """Like :meth:`read`, waiting up to ``timeout`` s for a message above ``after``."""
        peer = self._peer(ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), MAX_WAIT)
        while True:
            conv = self.conversations.get(peer)
            if conv is not None and conv.after(after):
                return self.read(peer, after)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            self._waiting += 1
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return []
            finally:
                self._waiting -= 1

    def conversation(self, ref: str) -> dict:
        """The summary of one conversation (timer, unread, verified, typing, connected)."""
        return self._summary(self._peer(ref))

    def conversations_view(self) -> list[dict]:
        """Summaries of every open conversation (no message text)."""
        peers = sorted(set(self.conversations) | {p for p, l in self.links.items() if l.sessions or l.closing})
        return [self._summary(p) for p in peers]

    def _summary(self, peer: str) -> dict:
        conv = self.conversations.get(peer)
        rec = self.node.peers.get(peer)
        link = self.links.get(peer)
        last = next(reversed(conv.messages.values()), None) if conv is not None and conv.messages else None
        return {"peer": peer, "name": rec.name if rec else "", "tier": rec.tier if rec else Tier.UNKNOWN.value,
                "messages": len(conv.messages) if conv else 0, "unread": conv.unread if conv else 0,
                "last_at": last.view()["sent_at"] if last else None,
                "timer": conv.timer if conv else "off",
                "timer_set_by": ("me" if conv.timer_set_by == self.node.identity.id else "peer")
                if conv is not None and conv.timer_set_by else None,
                "typing": bool(conv and conv.peer_typing),
                "verified": self._contacts.verified(peer) is not None,
                "connected": self.connected(peer), "encrypted": bool(link and link.sessions),
                "closing": bool(link and link.closing)}

    def close(self, ref: str) -> dict:
        """Wipe the conversation here and ask the peer to wipe it (sessions go once it has)."""
        peer = self._peer(ref)
        conv = self.conversations.pop(peer, None)
        if conv is not None:
            conv.wipe()
        self.files.drop_peer(peer)
        link = self.links.get(peer)
        told = False
        if link is not None and (link.sessions or link.out.unacked) and not link.closing:
            link.close_conversation()
            told = True
        self.node.events.emit(CHAT_CLOSED, peer=peer, by="me")
        self._changed_soon()
        return {"peer": peer, "closed": True, "peer_told": told}

    def set_timer(self, ref: str, name: str) -> dict:
        """Set the conversation's disappearing timer (both sides honour it)."""
        ttl = proto.parse_timer(name)
        peer = self._peer(ref)
        self.check_peer(peer)
        link = self._link(peer)
        if link.closing:
            raise ConversationClosing(f"the conversation with {peer[:12]} is being closed")
        conv = self._conv(peer)
        conv.ttl, conv.timer_set_by = ttl, self.node.identity.id
        link.queue(proto.encode_content(proto.Content(proto.TIMER, ttl=ttl)))
        self.node.events.emit(CHAT_TIMER, peer=peer, timer=conv.timer, by="me")
        return {"peer": peer, "timer": conv.timer}

    def verify(self, ref: str, mark: bool = False) -> dict:
        """The safety number with the peer; ``mark`` stores that the user verified it."""
        rec = self.node.resolve(ref)
        number = safety_number(self.node.identity.id, rec.id)
        row: dict | None
        if mark:
            before = self._contacts.verified_peers()
            row = self._contacts.mark(rec.id, rec.name, rec.address)
            self.node.events.emit(CHAT_VERIFIED, peer=rec.id,
                                  retired=sorted(before - self._contacts.verified_peers()))
        else:
            row = self._contacts.verified(rec.id)
        clash = self._contacts.conflict(rec.id, rec.name, rec.address)
        return {"peer": rec.id, "name": rec.name, "safety_number": number, "grouped": grouped(number),
                "verified": row is not None, "verified_at": row["verified_at"] if row else None,
                "key_changed": clash is not None}

    def is_verified(self, peer: str) -> bool:
        """Whether the user marked this exact peer id verified (a lookup in memory; False
        while the service is not started)."""
        return self.contacts is not None and self.contacts.verified(peer) is not None

    def qr_png(self, ref: str) -> bytes:
        """A PNG of the QR code of the safety number with the peer (for the GUI)."""
        return qr_png(safety_number(self.node.identity.id, self._peer(ref)))

    def qr_base64(self, ref: str) -> str:
        return base64.b64encode(self.qr_png(ref)).decode()

    async def typing(self, ref: str, on: bool = True) -> None:
        """The user is (or stopped) typing to the peer; nothing is sent when typing is off."""
        if not self.typing_enabled:
            return
        peer = self._peer(ref)
        link = self.links.get(peer)
        if link is None or not self.connected(peer):
            return
        now = time.monotonic()
        if on and now - self._typing_sent.get(peer, -TYPING_REPEAT) < TYPING_REPEAT:
            return
        self._typing_sent[peer] = now if on else -TYPING_REPEAT
        await link.send_typing(on)

    def settings(self, read_receipts: bool | None = None, typing: bool | None = None) -> dict:
        """Show or change the chat preferences (stored: they are not chat content)."""
        if read_receipts is not None:
            self.read_receipts = bool(read_receipts)
            self.node.store.set_setting(SETTING_RECEIPTS, self.read_receipts)
            for link in self.links.values():
                link.set_read_receipts(self.read_receipts)
        if typing is not None:
            self.typing_enabled = bool(typing)
            self.node.store.set_setting(SETTING_TYPING, self.typing_enabled)
            if not self.typing_enabled:
                for conv in self.conversations.values():
                    conv.peer_typing = False
        return {"read_receipts": self.read_receipts, "typing": self.typing_enabled}

    # -- contact requests ------------------------------------------------------------------
    async def request(self, ref: str, text: str) -> dict:
        """Send a contact request (one short line) to a peer that does not chat with us yet."""
        text = proto.clean_request_text(text)
        peer = self._peer(ref)
        await self.node.request(peer, proto.REQUEST, {"text": text}, timeout=10.0)
        return {"peer": peer, "sent": True}

    def requests(self) -> list[dict]:
        return [r.view() for r in self.inbox.list()]

    def accept(self, ref: str) -> dict:
        """Accept a contact request: the peer becomes EXTERNAL (it may chat)."""
        request = self.inbox.find(ref)
        if request is None:
            raise UnknownPeer(f"no contact request from {ref!r}; see `covey chat requests`")
        peers = self.node.peers
        if peers.get(request.peer) is None:  # a stranger's row may have expired meanwhile
            peers.add_or_update(request.peer, name=request.name or None, source="inbound", kept=True)
        view = self.node.trust(request.peer, Tier.EXTERNAL.value)
        self.inbox.pop(request.peer)
        return view

    def refuse(self, ref: str) -> dict:
        request = self.inbox.find(ref)
        if request is None:
            raise UnknownPeer(f"no contact request from {ref!r}; see `covey chat requests`")
        self.inbox.pop(request.peer)
        return {"peer": request.peer, "refused": True}

    # -- disappearing messages ----------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Remove every message whose timer ran out (both directions); returns how many."""
        now = time.time() if now is None else now
        total = 0
        for peer, conv in list(self.conversations.items()):
            gone = conv.expire(now)
            if not gone:
                continue
            total += len(gone)
            link = self.links.get(peer)
            if link is not None:
                for msg_id in gone:
                    link.forget((peer, msg_id))   # not delivered yet: never will be
            self.node.events.emit(CHAT_EXPIRED, peer=peer, ids=gone)
        self.groups.sweep()             # group invitations nobody answered in time (its own clock)
        mono = time.monotonic()         # skipped message keys kept past their time (ratchet.SKIPPED_TTL)
        for link in self.links.values():
            link.expire_skipped(mono)
        if total:
            self._changed_soon()
        return total

    async def _expire_loop(self) -> None:
        while True:
            self.sweep()
            times = [t for t in (*(c.next_expiry() for c in self.conversations.values()),
                                 self.groups.next_expiry()) if t is not None]
            # At most SKIPPED_SWEEP apart, for the skipped message keys (no wake when one is stored).
            timeout = min(max(0.0, min(times) - time.time()), SKIPPED_SWEEP) if times else SKIPPED_SWEEP
            self._expiry_wake.clear()
            try:
                await asyncio.wait_for(self._expiry_wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass  # a timer ran out: sweep

