"""The encrypted, reliable pairwise link to one peer: sessions + delivery + a send pump.

A :class:`Link` owns, in memory only:

- the double-ratchet sessions with the peer, by session id (at most
  ``MAX_SESSIONS``; the newest one sends). A session starts from the peer's
  prekey bundle (``chat.bundle``) with the first frame that needs sending, or
  from the peer's initial message. ``chat.reset`` from the peer (it holds no
  such session: it restarted, or the session passed the skip bound) drops the
  session and resends everything unacknowledged under a new one.
- two :class:`~core.chat.delivery.Delivery` halves: ``out`` numbers what we
  send under our random delivery epoch, ``inc`` releases what the peer sends
  under its epoch (a new epoch: the peer restarted or the conversation was
  closed, so counting starts again at the frame's ``base``).
- a pump task that sends due frames (acks first, then data in window order),
  each encrypted afresh at every (re)transmission, and sleeps until the next
  resend or delayed ack is due, a new frame is queued, or the peer reconnects.
  A message the user sends goes out in the sender's own turn (:meth:`Link.push`)
  when no pump step is under way; a received one is decrypted and delivered
  in the reader's turn (:meth:`Link.receive_now`: the ratchet never suspends).

What frames mean to the user is the owner's business (the chat service): it is
called back with ``on_content``, ``on_sent``, ``on_delivered``, ``on_read``,
``on_typing`` and ``on_link_closed``. Groups reuse the links: their content
carries a group id and fans out over the members' links (:mod:`core.chat.groups`).
While the peer is away, the owner's ``away(link)`` may carry what waits
elsewhere (the mailbox, :mod:`core.chat.mailbox`, via :meth:`Link.encrypt_away`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict

from core.errors import CoveyError, MalformedMessage, PeerUnreachable
from core.net.wire import Message
from core.chat import protocol as proto
from core.chat.delivery import Ack, Data, Delivery
from core.chat.errors import KeyAgreementFailed, SessionClosed, UnknownSession
from core.chat.ratchet import decode as decode_wire
from core.chat.session import Session
from core.chat.x3dh_adapter import Bundle, ChatKeys

log = logging.getLogger("covey.chat.link")

MAX_SESSIONS = 3          # sessions kept per peer (simultaneous starts, restarts)
MAX_CLOSED = 16           # ids of closed sessions remembered (to name the refusal)
MAX_TAGS = 8192           # outgoing seqs remembered for read receipts
MAX_RESETS = 4            # chat.reset sends in flight per peer
RETRY_MIN, RETRY_MAX = 1.0, 60.0
WINDOW, REORDER, OUTBOX = 128, 256, 1000
ACK_EVERY = 32            # data frames acknowledged at once at most ...
ACK_DELAY = 0.005         # ... or this many seconds after the first one waiting (a delayed ack:
                          # each ack turns the ratchet round, a DH step on both sides)


def _sid(session: Session) -> bytes:
    return session.session_id[:proto.SID]


class Link:
    """See the module docstring. ``owner`` is the chat service (callbacks and policy checks)."""

    def __init__(self, owner, keys: ChatKeys, peer: str, *, read_receipts: bool = True,
                 backoff_base: float = 1.0):
        self.owner = owner
        self.keys = keys
        self.peer = peer
        self.read_receipts = read_receipts
        self.backoff_base = backoff_base
        self.sessions: "OrderedDict[bytes, Session]" = OrderedDict()
        self.current: Session | None = None
        self.bundle: Bundle | None = None
        self._closed_sids: "OrderedDict[bytes, None]" = OrderedDict()
        self._tags: "OrderedDict[int, object]" = OrderedDict()   # out seq -> owner's tag
        self._closing: int | None = None                       # seq of our CLOSE, until acked
        self._wipe_after_ack = False
        self._tx = asyncio.Lock()
        self._stepping = asyncio.Lock()      # one pump step at a time (the pump's or push's)
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0                  # monotonic time the timer fires at
        self._resets: dict[bytes, asyncio.Task] = {}
        self._retry_at: float | None = None
        self._retry_delay = RETRY_MIN
        self._task: asyncio.Task | None = None
        self._ack_waiting = 0                 # data frames received since our last ack
        self._ack_since: float | None = None  # when the first of them arrived
        self._new_epochs()

    def __repr__(self) -> str:
        return f"Link({self.peer[:16]}..., {len(self.sessions)} sessions, {self.out.unacked} unacked)"

    def __reduce_ex__(self, protocol):
        raise TypeError("a chat link holds session keys: it cannot be copied or pickled")

    def _new_epochs(self) -> None:
        self.out_epoch = os.urandom(proto.EPOCH)
        self.out = Delivery(max_outbox=OUTBOX, window=WINDOW, max_reorder=REORDER,
                            backoff_base=self.backoff_base, read_receipts=self.read_receipts)
        self.peer_epoch: bytes | None = None
        self.inc = self._receiver()
        self._tags.clear()

    def _receiver(self) -> Delivery:
        return Delivery(max_outbox=OUTBOX, window=WINDOW, max_reorder=REORDER,
                        read_receipts=self.read_receipts)

    def set_read_receipts(self, on: bool) -> None:
        self.read_receipts = self.out.read_receipts = self.inc.read_receipts = bool(on)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._pump())

    async def stop(self) -> None:
        """Stop the pump and wipe every key (node shutdown)."""
        tasks = list(self._resets.values())
        if self._task is not None:
            tasks.append(self._task)
            self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wipe_sessions()

    def poke(self) -> None:
        """Something may be due: run the pump now."""
        self._wake.set()

    def link_up(self) -> None:
        """The peer (re)connected: resend everything unacknowledged now."""
        self.out.link_up(time.monotonic())
        self._retry_at = None
        self._retry_delay = RETRY_MIN
        self.poke()

    # -- sending -----------------------------------------------------------------------
    def queue(self, content: bytes, tag: object = None, *, wake: bool = True) -> int:
        """Queue one content payload for reliable delivery; returns its seq (OutboxFull at the bound).

        ``wake=False``: the caller sends it itself right after (:meth:`push`)."""
        seq = self.out.queue(content, time.monotonic())
        if tag is not None:
            self._tags[seq] = tag
            while len(self._tags) > MAX_TAGS:
                self._tags.popitem(last=False)
        if wake:
            self.poke()
        return seq

    async def push(self, connected: bool | None = None) -> None:
        """Send what is due now, in the caller's turn: what a pump step would do, without the
        hop to the pump task. If a step is under way, the pump takes it on after that one.
        ``connected``: the caller checked in this turn whether the peer is (None: look)."""
        if connected is None:
            connected = self.owner.connected(self.peer)
        if self._stepping.locked() or not connected:
            self.poke()      # away: the pump holds it for later (a mailbox), never in the caller's turn
            return
        async with self._stepping:   # free: taken without a suspension, so still connected
            await self._step(connected=True)

    def forget(self, tag: object) -> None:
        """Stop sending the message tagged ``tag`` (it disappeared by timer before delivery)."""
        for seq, t in list(self._tags.items()):
            if t == tag:
                self.out.forget(seq)
                del self._tags[seq]

    def mark_read(self) -> None:
        """The user saw everything released so far (a read receipt goes out if they are on)."""
        self.inc.mark_read(self.inc.released)
        self.poke()

    def close_conversation(self) -> None:
        """Drop what waits, send a CLOSE; the sessions are wiped once the peer has it."""
        for seq in list(self.out._outbox):
            self.out.forget(seq)
        self._tags.clear()
        self._closing = self.queue(proto.encode_content(proto.Content(proto.CLOSE)))

    async def send_typing(self, on: bool) -> None:
        """A typing indicator: sent once, never retransmitted (only if a session exists)."""
        if self.current is not None and self._closing is None and self.owner.connected(self.peer):
            await self._transmit(proto.encode_typing(on))

    @property
    def needs_bundle(self) -> bool:
        """Whether the next frame starts a session and no bundle of the peer is at hand."""
        return (self.current is None or self.current.closed) and self.bundle is None

    async def ensure_bundle(self) -> None:
        """Fetch and verify the peer's bundle if a session will be needed (errors are raised)."""
        if self.needs_bundle:
            self.bundle = await self._fetch_bundle()

    async def _fetch_bundle(self) -> Bundle:
        return await self.owner.mailbox.bundles.fetch(self.peer)   # verified, and remembered

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            async with self._stepping:
                self._wake.clear()
                await self._step()

    async def _step(self, connected: bool | None = None) -> None:
        """Send what is due (or hold it for later while the peer is away); arm the next wake.
        ``connected``: the caller just checked that the peer is (None: look)."""
        wake = None
        if connected or (connected is None and self.owner.connected(self.peer)):
            try:
                wake = await self._flush()
            except PeerUnreachable:
                wake = None  # link_up wakes us when it is back
            except CoveyError as exc:
                # No session could be started (refused, bad bundle, key changed, timeout):
                # try again later, with backoff.
                log.warning("chat with %s: cannot send yet: %s", self.peer[:12], exc)
                wake = self._backoff()
            except Exception:  # a bug must not end the pump (and strand every message)
                log.exception("chat with %s: sending failed", self.peer[:12])
                wake = self._backoff()
        elif self.out.unacked and self._closing is None:
            try:
                wake = await self.owner.away(self)
            except Exception:  # the same: a bug must not end the pump
                log.exception("chat with %s: holding for later failed", self.peer[:12])
        if wake is not None:
            self._arm(wake)

    def _arm(self, when: float) -> None:
        """Wake the pump at ``when`` (monotonic) at the latest. A timer that fires earlier is
        kept: waking early costs one step that finds little due, while moving the timer on
        every message costs a cancel and a new timer each."""
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(max(0.0, when - time.monotonic()), self._ring)

    def _ring(self) -> None:
        self._timer = None
        self._wake.set()

    def _backoff(self) -> float:
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        return self._retry_at

    async def _flush(self) -> float | None:
        """Send what is due; returns when something next falls due (None: nothing waits)."""
        now = time.monotonic()
        if self._retry_at is not None and now < self._retry_at:
            return self._retry_at
        self._retry_at = None
        ack_at = self._ack_due_at(now)
        if ack_at is not None and self.out.due(now):
            ack_at = None  # data goes out now: the acks (and receipts) waiting go first, so a
            # reply never overtakes the acknowledgement of what it answers
        ack = None
        if ack_at is None:
            ack = self.inc.take_ack()    # the incoming half only ever has an ack to send
            self._ack_waiting, self._ack_since = 0, None
        if ack is not None and self._closing is None:
            # (after our CLOSE nothing else goes out on these sessions: the peer wipes them)
            await self._transmit(proto.encode_ack(self.peer_epoch or bytes(proto.EPOCH), ack))
        if self._wipe_after_ack:
            self._wipe_after_ack = False
            self._reset_all()
        frames, wake = self.out.tick(now)
        base = self.out.base
        fresh = []
        alone = len(frames) == 1     # one frame: written at once; several: they may share a write
        for frame in frames:
            if isinstance(frame, Data):
                await self._transmit(proto.encode_data(self.out_epoch, frame, base), urgent=alone)
                if frame.attempt == 1 and frame.seq in self._tags:
                    fresh.append(self._tags[frame.seq])
        self._retry_delay = RETRY_MIN
        if fresh:
            self.owner.on_sent(self, fresh)
        if ack_at is not None:
            wake = ack_at if wake is None else min(wake, ack_at)
        return wake

    def _ack_due_at(self, now: float) -> float | None:
        """None: acknowledge now; else the time the delayed ack falls due."""
        if self._ack_since is None or self._ack_waiting >= ACK_EVERY or self._wipe_after_ack:
            return None
        due = self._ack_since + ACK_DELAY
        return None if now >= due else due

    async def _transmit(self, plaintext: bytes, *, urgent: bool = False) -> None:
        """Encrypt one frame (a fresh ratchet message) and send it; starts a session if needed.
        ``urgent``: written at once when nothing waits before it (the connection's rule for
        requests: someone waits for it), not held to share a write with later frames."""
        async with self._tx:
            session = self.current
            if session is None or session.closed:
                bundle, self.bundle = self.bundle or await self._fetch_bundle(), None
                session, data = await Session.initiate(self.keys, self.peer, bundle, plaintext)
                self._add(session)
            else:
                data = session.encrypt_now(plaintext)
            conn = self.owner.node.connections.get(self.peer)
            if conn is None or conn.closed:
                raise PeerUnreachable(f"peer {self.peer[:12]} is not connected")
            await conn.send(Message(proto.MSG, proto.msg_body(_sid(session), data)), urgent=urgent)

    async def encrypt_away(self, plaintext: bytes) -> tuple[bytes, bytes]:
        """Encrypt one frame for a peer that is away; returns (session id, wire bytes).

        It goes under a session the peer can open even if it restarted meanwhile:
        the current one while it still carries its X3DH header, else a new one
        from the spare bundle kept in ``self.bundle`` (KeyAgreementFailed if none).
        The new session becomes the current one, so resends use it too."""
        async with self._tx:
            session = self.current
            if session is None or not session.opens_alone:
                if self.bundle is None:
                    raise KeyAgreementFailed(f"no prekey bundle of {self.peer[:12]} at hand (fetched "
                                             f"while it is connected): cannot hold messages for it")
                bundle, self.bundle = self.bundle, None
                session, wire = await Session.initiate(self.keys, self.peer, bundle, plaintext)
                self._add(session)
            else:
                wire = await session.encrypt(plaintext)
            return _sid(session), wire

    async def keep_spare_bundle(self) -> None:
        """Fetch a bundle to keep at hand (for a session started while the peer is away).

        The peer hands out the same one-time prekey until it is used, so a bundle
        fetched while our newest session still waits for the peer's first reply may
        carry that session's prekey: it is not kept then."""
        if self.bundle is not None or not self.owner.connected(self.peer):
            return
        bundle = await self._fetch_bundle()
        if self.bundle is None and not any(s.opens_alone for s in self.sessions.values()):
            self.bundle = bundle

    # -- receiving ---------------------------------------------------------------------
    async def receive(self, sid: bytes, wire: bytes) -> None:
        """Decrypt and act on one ``chat.msg`` (raises a typed error if refused; nothing changes then)."""
        self.receive_now(sid, wire)

    def receive_now(self, sid: bytes, wire: bytes) -> None:
        """:meth:`receive`, in this call: the ratchet never suspends, so one message is decrypted
        and acted on in one step (in arrival order, none interleaved); a reset it calls for is
        sent in the background."""
        session = self.sessions.get(sid)
        if session is not None:
            plaintext = session.decrypt_now(wire)
        else:
            if sid in self._closed_sids:
                self._reset_soon(sid)
                raise SessionClosed(f"message from {self.peer[:16]} for a closed conversation")
            head = decode_wire(wire).x3dh
            if head is None:
                self._reset_soon(sid)
                raise UnknownSession(f"message from {self.peer[:16]} is for a session this node does "
                                     f"not hold (closed, or from before a restart); asked it to start anew")
            if head.ek[:proto.SID] != sid:
                raise MalformedMessage("chat message: session id does not match its X3DH header")
            self.owner.check_peer(self.peer)
            try:
                session, plaintext = Session.accept_now(self.keys, self.peer, wire)
            except KeyAgreementFailed:
                # Its prekey is gone (used before this node restarted, or replaced): the peer
                # still sends under a session we can no longer open; ask it to start anew.
                self._reset_soon(sid)
                raise
            self._add(session)
        self._on_frame(*proto.decode_frame(plaintext))

    def _on_frame(self, kind: str, frame) -> None:
        if kind == proto.FRAME_DATA:
            epoch, data, base = frame
            if self._closing is not None:
                return  # sent before the peer saw our CLOSE: it drops it from its outbox then
            if epoch != self.peer_epoch:
                self.peer_epoch = epoch      # the peer's sender started anew
                self.inc = self._receiver()
            released = self.inc.skip_to(base) if base > self.inc.released + 1 else []
            released += self.inc.on_data(data)
            try:
                for _seq, payload in released:   # shown first, acknowledged (below) right after
                    try:
                        content = proto.decode_content(payload)
                    except CoveyError as exc:
                        self.owner.refused(self.peer, "chat.content", exc)
                        continue
                    if content.kind == proto.CLOSE and content.group is None:
                        self._peer_closed()
                    self.owner.on_content(self, content)
            finally:
                self._ack_waiting += 1           # acknowledge (duplicates too), soon
                now = time.monotonic()
                if self._ack_since is None:
                    self._ack_since = now
                due = self._ack_due_at(now)
                if due is None:
                    self.poke()
                else:
                    self._arm(due)               # a delayed ack: no pump step per message
        elif kind == proto.FRAME_ACK:
            epoch, ack = frame
            if epoch != self.out_epoch:
                log.debug("ack from %s for an earlier epoch ignored", self.peer[:12])
                return
            self._on_ack(ack)
        else:
            self.owner.on_typing(self, frame.on)

    def _on_ack(self, ack: Ack) -> None:
        receipts = self.out.on_ack(ack)      # BadReceipt for a message never sent
        if receipts.delivered:
            self.poke()                      # the window moved: what waited behind it may go
        if self._closing is not None and self._closing in receipts.delivered:
            self._reset_all()
            self.owner.on_link_closed(self)
            return
        delivered = [self._tags[s] for s in receipts.delivered if s in self._tags]
        if delivered:
            self.owner.on_delivered(self, delivered)
        if receipts.read is not None:
            read = [s for s in self._tags if s <= receipts.read]
            tags = [self._tags.pop(s) for s in read]
            if tags:
                self.owner.on_read(self, tags)

    def _peer_closed(self) -> None:
        """The peer closed the conversation: drop what we had queued, wipe after acknowledging."""
        for seq in list(self.out._outbox):
            self.out.forget(seq)
        self._tags.clear()
        self._closing = None
        self._wipe_after_ack = True

    def on_reset(self, sid: bytes) -> None:
        """The peer holds no session ``sid``: drop it and resend what waits under a new one."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session.wipe()
        if self._closing is not None:        # it already wiped the conversation we were closing
            self._reset_all()
            self.owner.on_link_closed(self)
            return
        if self.current is session:
            self.current = next(reversed(self.sessions.values()), None)
        log.info("chat with %s: the peer has no session %s; starting a new one", self.peer[:12], sid.hex())
        self.link_up()

    def _reset_soon(self, sid: bytes) -> None:
        """Tell the peer we hold no session ``sid``, in the background (a few at a time: past
        that, the peer hears it when it resends)."""
        if sid in self._resets or len(self._resets) >= MAX_RESETS:
            return
        task = self._resets[sid] = asyncio.ensure_future(self._send_reset(sid))
        task.add_done_callback(lambda _task: self._resets.pop(sid, None))

    async def _send_reset(self, sid: bytes) -> None:
        try:
            await self.owner.node.send(self.peer, proto.RESET, {"s": sid})
        except PeerUnreachable:
            pass  # it will resend, and hear it then
        except Exception:  # a background send: nobody else would see it fail
            log.exception("chat with %s: sending a reset failed", self.peer[:12])

    # -- sessions ----------------------------------------------------------------------
    def _add(self, session: Session) -> None:
        """Keep ``session`` (it becomes the one we send with); the oldest beyond the bound is wiped."""
        self.sessions[_sid(session)] = session
        self.sessions.move_to_end(_sid(session))
        self.current = session
        while len(self.sessions) > MAX_SESSIONS:
            _, old = self.sessions.popitem(last=False)
            old.wipe()

    def expire_skipped(self, now: float) -> int:
        """Drop the sessions' skipped message keys past their time (``now``: monotonic)."""
        return sum(session.expire_skipped(now) for session in self.sessions.values())

    def _wipe_sessions(self) -> None:
        for sid, session in self.sessions.items():
            session.wipe()
            self._closed_sids[sid] = None
        while len(self._closed_sids) > MAX_CLOSED:
            self._closed_sids.popitem(last=False)
        self.sessions.clear()
        self.current = None
        self.bundle = None

    def _reset_all(self) -> None:
        """Closed on both sides: wipe the sessions and start counting anew."""
        self._wipe_sessions()
        self._closing = None
        self._new_epochs()

    @property
    def closing(self) -> bool:
        return self._closing is not None
