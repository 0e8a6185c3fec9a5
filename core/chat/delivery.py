"""Reliable, in-order, exactly-once delivery for one conversation: a pure state machine.

Modelled on MVDS (batch mode) / Briar's BSP, for a pairwise link: the sender
numbers messages 1, 2, 3...; each waits in a bounded outbox with a send count
and a next-send time, resent with exponential backoff until acknowledged.
The receiver releases messages to the UI in sequence order exactly once,
holding early arrivals in a bounded reorder buffer, and answers with an
:class:`Ack` (cumulative + selective): the ack is the delivery receipt. The
same frame carries the read receipt (highest seq the user has read), unless
read receipts are off, in which case none are sent and none are shown.

No I/O and no clock: the caller passes ``now`` and moves the frames (each
frame should travel encrypted, so a fresh ratchet message is made per
transmission). Flow control: only the oldest ``window`` unacknowledged
messages are ever on the wire, and ``window`` never exceeds the receiver's
reorder bound, so an honest sender's messages always fit.
"""
from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from core.errors import MalformedMessage
from core.chat.errors import BadReceipt, OutboxFull

MAX_SEQ = 2 ** 63 - 1


class Data(NamedTuple):
    """One message on the wire (``attempt`` counts from 1). Immutable (a named tuple: one is
    made per message at each end, several times cheaper than a frozen dataclass)."""
    seq: int
    payload: bytes
    attempt: int


class Ack(NamedTuple):
    """Everything up to ``upto`` received, plus the seqs in ``sel``; ``read``: highest seq read."""
    upto: int
    sel: tuple[int, ...] = ()
    read: int | None = None


@dataclass
class _Pending:
    payload: bytes
    sends: int = 0
    next_send: float = 0.0


class Receipts(NamedTuple):
    """What an Ack told the sender: newly delivered seqs and the new read mark (or None)."""
    delivered: tuple[int, ...]
    read: int | None


@dataclass
class Delivery:
    """Delivery state of one conversation (both directions). See the module docstring."""

    max_outbox: int = 1000
    window: int = 64
    max_reorder: int = 256
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    read_receipts: bool = True
    # sender side
    _next_seq: int = field(default=1, init=False)
    _outbox: "OrderedDict[int, _Pending]" = field(default_factory=OrderedDict, init=False)
    _peer_read: int = field(default=0, init=False)
    # What tick may skip: the first ``_sent`` outbox entries were sent at least once and none of
    # the sent entries falls due before ``_resend_at``; ``_rescan``: these may be stale (an ack,
    # a forget, a link_up moved things), so the next tick walks the window.
    _sent: int = field(default=0, init=False)
    _resend_at: float = field(default=math.inf, init=False)
    _rescan: bool = field(default=False, init=False)
    # receiver side
    _released: int = field(default=0, init=False)   # all seqs <= this were shown, in order
    _early: dict[int, bytes] = field(default_factory=dict, init=False)
    _ack_due: bool = field(default=False, init=False)
    _read: int = field(default=0, init=False)
    _read_sent: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.window <= self.max_reorder or self.max_outbox < self.window:
            raise ValueError("need 1 <= window <= max_reorder and window <= max_outbox")
        if not 0 < self.backoff_base <= self.backoff_max:
            raise ValueError("need 0 < backoff_base <= backoff_max")

    # -- sender ----------------------------------------------------------------
    def queue(self, payload: bytes, now: float) -> int:
        """Put a message in the outbox; returns its seq. Raises OutboxFull at the bound."""
        if len(self._outbox) >= self.max_outbox:
            raise OutboxFull(f"{len(self._outbox)} messages are waiting for the peer; try later")
        seq = self._next_seq
        self._next_seq += 1
        self._outbox[seq] = _Pending(bytes(payload), 0, now)
        return seq

    @property
    def base(self) -> int:
        """The lowest seq still waiting (or the next one): the peer may skip everything below it."""
        return next(iter(self._outbox), self._next_seq)

    @property
    def released(self) -> int:
        """Receiver: every seq up to this one was released, in order."""
        return self._released

    @property
    def unacked(self) -> int:
        """How many sent-or-queued messages the peer has not acknowledged."""
        return len(self._outbox)

    def tick(self, now: float) -> tuple[list[Data | Ack], float | None]:
        """Frames to send now and when to tick next (None: nothing waits). The time may come
        early (a message acknowledged meanwhile); a tick then finds nothing due, and tells the
        exact time."""
        frames: list[Data | Ack] = []
        ack = self._ack_frame()
        if ack is not None:
            frames.append(ack)
        if self._rescan or now >= self._resend_at:
            return frames, self._scan(now, frames)
        # No sent message is due: only the ones never sent (behind the first _sent) may be.
        for seq, item in itertools.islice(self._outbox.items(), self._sent, self.window):
            if item.next_send > now:   # queued for later (or resent out of order): walk it all
                return frames, self._scan(now, frames)
            self._send(seq, item, now, frames)
            self._sent += 1
            if item.next_send < self._resend_at:
                self._resend_at = item.next_send
        return frames, (self._resend_at if self._outbox else None)

    def _scan(self, now: float, frames: list) -> float | None:
        """tick's walk over the whole window: sends what is due, refreshes what tick may skip;
        returns the exact time the next message falls due."""
        wake = None
        sent, resend_at, prefix = 0, math.inf, True
        for index, (seq, item) in enumerate(self._outbox.items()):
            if index >= self.window:
                break
            if item.next_send <= now:
                self._send(seq, item, now, frames)
            if item.sends:
                sent += prefix
                resend_at = min(resend_at, item.next_send)
            else:
                prefix = False
            wake = item.next_send if wake is None else min(wake, item.next_send)
        self._sent, self._resend_at, self._rescan = sent, resend_at, False
        return wake

    def _send(self, seq: int, item: _Pending, now: float, frames: list) -> None:
        item.sends += 1
        item.next_send = now + min(self.backoff_base * 2 ** (item.sends - 1), self.backoff_max)
        frames.append(Data(seq, item.payload, item.sends))

    def due(self, now: float) -> bool:
        """True when a message (within the window) is due to be sent at ``now``."""
        start = 0 if self._rescan or now >= self._resend_at else self._sent
        for item in itertools.islice(self._outbox.values(), start, self.window):
            if item.next_send <= now:
                return True
        return False

    def waiting(self) -> list[tuple[int, bytes]]:
        """(seq, payload) of every message not yet acknowledged, oldest first."""
        return [(seq, item.payload) for seq, item in self._outbox.items()]

    def link_up(self, now: float) -> None:
        """The link came back: resend every unacknowledged message at the next tick."""
        for item in self._outbox.values():
            item.next_send = min(item.next_send, now)
        self._rescan = True

    def forget(self, seq: int) -> bool:
        """Stop sending ``seq`` (e.g. it disappeared by timer); True if it was waiting."""
        self._rescan = True
        return self._outbox.pop(seq, None) is not None

    def on_ack(self, ack: Ack) -> Receipts:
        """Apply a peer's Ack; raises BadReceipt if it names a message never sent."""
        last = self._next_seq - 1
        if not _seq_ok(ack.upto, zero=True) or ack.upto > last:
            raise BadReceipt(f"ack up to {ack.upto!r:.20} but only {last} messages were sent")
        if not isinstance(ack.sel, tuple) or len(ack.sel) > self.max_reorder or any(
                not _seq_ok(s) or not ack.upto < s <= last for s in ack.sel):
            raise BadReceipt("selective ack names messages never sent or already covered")
        if ack.read is not None and (not _seq_ok(ack.read, zero=True) or ack.read > last):
            raise BadReceipt(f"read receipt for message {ack.read!r:.20} that was never sent")
        delivered = []
        self._rescan = True
        while self._outbox and next(iter(self._outbox)) <= ack.upto:
            delivered.append(self._outbox.popitem(last=False)[0])
        for seq in ack.sel:
            if self._outbox.pop(seq, None) is not None:
                delivered.append(seq)
        read = None
        if self.read_receipts and ack.read is not None and ack.read > self._peer_read:
            self._peer_read = read = ack.read
        return Receipts(tuple(sorted(delivered)), read)

    # -- receiver --------------------------------------------------------------
    def on_data(self, data: Data) -> list[tuple[int, bytes]]:
        """Accept a message; returns the (seq, payload) pairs now released, in order.

        Duplicates release nothing (but are acknowledged again); a message too
        far ahead of the reorder buffer is dropped unacknowledged (it is resent).
        """
        seq = data.seq
        if not _seq_ok(seq):
            raise MalformedMessage(f"message sequence number {seq!r:.20} out of range")
        if not isinstance(data.payload, bytes):
            raise MalformedMessage("message payload must be bytes")
        if seq <= self._released or seq in self._early:
            self._ack_due = True
            return []
        if seq > self._released + self.max_reorder:
            return []
        self._ack_due = True
        self._early[seq] = data.payload
        released = []
        while self._released + 1 in self._early:
            self._released += 1
            released.append((self._released, self._early.pop(self._released)))
        return released

    def skip_to(self, base: int) -> list[tuple[int, bytes]]:
        """The sender will never send seqs below ``base`` again (acknowledged, or forgotten by a
        timer): stop waiting for them; returns the (seq, payload) pairs this releases, in order."""
        if not _seq_ok(base):
            raise MalformedMessage(f"base sequence number {base!r:.20} out of range")
        if base - 1 <= self._released:
            return []
        self._released = base - 1
        self._ack_due = True
        released = [(seq, self._early.pop(seq)) for seq in sorted(s for s in self._early if s < base)]
        while self._released + 1 in self._early:
            self._released += 1
            released.append((self._released, self._early.pop(self._released)))
        return released

    def mark_read(self, upto: int) -> None:
        """The user has read every released message up to ``upto``."""
        upto = min(int(upto), self._released)
        if upto > self._read:
            self._read = upto

    def take_ack(self) -> Ack | None:
        """Receiver: the ack (and read receipt) to send now, if any is due (what tick sends)."""
        return self._ack_frame()

    def _ack_frame(self) -> Ack | None:
        read_news = self.read_receipts and self._read > self._read_sent
        if not (self._ack_due or read_news):
            return None
        self._ack_due = False
        read = None
        if self.read_receipts:
            read = self._read_sent = self._read
        return Ack(self._released, tuple(sorted(self._early)), read)


def _seq_ok(value, *, zero: bool = False) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int)
            and (0 if zero else 1) <= value <= MAX_SEQ)
