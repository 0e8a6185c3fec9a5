"""One authenticated, protected connection to a peer over a WebSocket.

Sending keeps messages in order and costs little per message:
- A message sent while nothing else is in flight is sealed and written at
  once. When the socket's write buffer is empty it goes through aiohttp's
  synchronous frame writer without any coroutine (``_direct``); otherwise
  through ``ws.send_bytes``, which waits for the buffer to drain.
- Small messages sent right after it, in the same event-loop turn, or while
  a large message is being written, are *batched*: one sealed frame carries
  many of them, written by a flush task on the next turn. A sender that finds
  the batch full waits for it to be written: that wait is the backpressure a
  slow peer puts on its senders (the batch is the per-peer send queue).
- A large message takes the write lock, writes what is batched before it,
  then its own frames (chunked above ``max_frame``) without interleaving.

Receiving: ``run()`` reads frames, opens them, reassembles messages up to
the peer's ``limits.max_receive`` bytes and hands each decoded message to
``on_message``, awaiting what it returns (that await is the backpressure a
busy node puts on the peer). The peer's messages are metered by a token
bucket (``limits.rate``): when it is empty the reader sleeps. Unfinished
chunked messages of all connections share one node-wide ``Budget`` and
must complete within ``partial_timeout``. Liveness is checked here, not by
aiohttp's heartbeat (which re-arms a timer for every frame received): a
timer every ``heartbeat / 2`` seconds looks at a frame counter; after
``heartbeat`` seconds of silence it sends a PING, and when nothing (not even
the PONG) arrives within ``heartbeat / 2`` more, it closes the connection. A frame that fails
authentication, a message over the cap, a full budget, a timed-out message
or a protocol violation closes the connection with a reason; a malformed
message body or an unknown type gets an error reply and the connection stays up.
"""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any, Awaitable, Callable

import aiohttp

from core.net import inbox as _inbox
from core.net import wire
from core.errors import CoveyError, MalformedMessage, MessageTooLarge, PeerUnreachable
from core.net.handshake import Channel
from core.net.limits import Budget, Gate, PeerLimits

log = logging.getLogger("covey.connection")

CLOSE_PROTOCOL = 4002   # protocol violation (bad frame, bad auth tag)
CLOSE_TOO_LARGE = 4009  # message over the cap
CLOSE_POLICY = 4003     # refused by policy (banned, rate limited)
CLOSE_REPLACED = 4010   # a newer connection to the same peer replaced this one
CLOSE_SHUTDOWN = 4011   # node shutting down
CLOSE_BUSY = 4012       # a node-wide budget is exhausted (unfinished messages)
CLOSE_TOO_SLOW = 4013   # an unfinished message took too long
CLOSE_SILENT = 4014     # the peer answered no heartbeat PING
MAX_BAD_MESSAGES = 20   # malformed messages tolerated before closing
BATCH_MAX = 64 << 10    # bytes of small messages carried by one batch frame
SMALL = 16 << 10        # messages up to this size may be batched
_LEN = struct.Struct(">I")
_BINARY, _PING, _PONG = aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG
_OP_BINARY = int(aiohttp.WSMsgType.BINARY)


class _Sent:
    """What ``send`` returns for a message already written: awaiting it costs nothing."""
    __slots__ = ()

    def __await__(self):
        return iter(())


SENT = _Sent()


def _frame_writer(ws) -> tuple[Callable | None, Callable | None]:
    """aiohttp's synchronous frame write and the socket's write-buffer size, or (None, None).

    ``_write_websocket_frame`` is aiohttp's own (private) step under ``send_frame``: header,
    client mask, ``transport.write``. Used only without compression and while the socket's
    buffer is empty; an aiohttp without it just takes ``ws.send_bytes`` every time."""
    writer = getattr(ws, "_writer", None)
    write = getattr(writer, "_write_websocket_frame", None)
    transport = getattr(writer, "transport", None)
    if write is None or transport is None or getattr(writer, "compress", True):
        return None, None
    return write, transport.get_write_buffer_size


class PeerConnection:
    """An authenticated channel to one peer (either direction)."""

    def __init__(self, ws, channel: Channel, peer_id: str, peer_name: str, *, initiator: bool,
                 remote: str, listen_port: int, max_frame: int, max_message: int,
                 limits: PeerLimits, budget: Budget, unknown_budget: Budget,
                 partial_timeout: float = 120.0, heartbeat: float = 20.0):
        self.ws = ws
        self.channel = channel
        self.peer_id = peer_id
        self.peer_name = peer_name
        self.initiator = initiator
        self.remote = remote                 # host:port of the socket
        self.listen_port = listen_port       # the peer's advertised listen port (0: none)
        self.mode = channel.mode
        self.max_frame = max_frame
        self.max_message = max_message      # what we send
        self.budget = budget                # node-wide: bytes held in unfinished messages
        self.unknown_budget = unknown_budget  # the part of it UNKNOWN peers may hold
        self.partial_timeout = partial_timeout
        self.limits = limits
        self.gate = Gate(limits.tasks)      # async handler tasks in flight (used by the node)
        self.throttled = 0                  # times the reader slept for the rate limit
        self._tokens = limits.burst
        self._refilled_at = time.monotonic()
        self._max_whole = limits.max_receive + 1  # frame plaintext bytes of a whole message
        self.opened_at = time.time()
        self.on_message: Callable[["PeerConnection", wire.Message], Awaitable[None] | None] | None = None
        self.close_reason = ""
        self.bad_messages = 0
        self._lock = asyncio.Lock()          # held while a large message or a batch is written
        self._write, self._wbuffered = _frame_writer(ws)  # synchronous frame write, or (None, None)
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._batch_written: asyncio.Future | None = None  # resolves when the open batch is on the wire
        self._flusher: asyncio.Task | None = None
        self._turn_open = False              # a message went out directly in this loop turn
        self._batch_limit = min(BATCH_MAX, max_frame - 64)
        self._closed = asyncio.Event()
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._held = 0                       # bytes of _parts reserved in the budget
        self._held_unknown = 0               # ... and in the UNKNOWN peers' share of it
        self._parts_timer: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task | None = None
        self.heartbeat = heartbeat           # seconds of silence before a PING (0: never)
        self._received = 0                   # frames read: the heartbeat timer watches it
        self._beat: asyncio.TimerHandle | None = None
        self._beat_state = (0, 0)            # (frames read at the last tick, silent ticks since)
        self._pinger: asyncio.Task | None = None
        self.idle = False                    # run() waits at ws.receive() (the inbox may deliver now)
        self.inbox: Any = None               # core.net.inbox.Inbox under ws, if installed

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or self.ws.closed

    def refund(self) -> None:
        """Give back the token of a message this node solicited (the reply to its request)."""
        self._tokens += 1

    def set_limits(self, limits: PeerLimits) -> None:
        """Apply new limits (the peer's tier changed); a smaller bucket is cut at once."""
        self.limits = limits
        self.gate.size = limits.tasks
        self._max_whole = limits.max_receive + 1
        self._tokens = min(self._tokens, limits.burst)

    # -- sending ---------------------------------------------------------------
    def send(self, msg: wire.Message, *, urgent: bool = False) -> Awaitable[None]:
        """Encode and send one message, in order with every other send; await it.

        ``urgent`` (requests and replies, where someone waits for the answer):
        write at once when nothing is queued, without opening a batching turn.
        A plain function: a message written at once costs no coroutine at all."""
        data = wire.encode(msg)
        if len(data) <= SMALL and self._direct(data, urgent):
            return SENT
        return self.send_raw(data, urgent)

    def _direct(self, data: bytes, urgent: bool) -> bool:
        """Seal and write a small message now if nothing is queued before it and the socket
        keeps up (an empty write buffer: no drain to wait for); False: take send_raw."""
        write, buffered = self._write, self._wbuffered
        if write is None or buffered is None:
            return False
        if ((not urgent and self._turn_open) or self._batch or self._lock.locked()
                or self._closed.is_set() or self.ws.closed or buffered()):
            return False
        if not urgent:
            self._turn_open = True
            asyncio.get_running_loop().call_soon(self._end_turn)
        try:
            write(self.channel.seal(b"\x00" + data), _OP_BINARY, 0)
        except (ConnectionError, RuntimeError) as exc:
            # The transport is closing: send_raw reports it (and the connection closes).
            log.debug("direct write to %s failed: %s", self.peer_id[:12], exc)
            return False
        return True

    async def send_raw(self, data: bytes, urgent: bool = False) -> None:
        if self._closed.is_set() or self.ws.closed:
            raise PeerUnreachable(f"connection to {self.peer_id[:12]} is closed")
        size = len(data)
        if size > SMALL:
            await self._send_large(data)
            return
        # Hot path, kept flat: every message pays for each layer.
        if (urgent or not self._turn_open) and not self._batch and not self._lock.locked():
            if not urgent:
                self._turn_open = True
                asyncio.get_running_loop().call_soon(self._end_turn)
            try:
                await self.ws.send_bytes(self.channel.seal(b"\x00" + data))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                await self._lost(exc)
            return
        while self._batch_size + size + 4 > self._batch_limit:
            await self._wait_batch_written()
        self._batch.append(data)
        self._batch_size += size + 4
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_batches())

    def _end_turn(self) -> None:
        self._turn_open = False

    async def _wait_batch_written(self) -> None:
        if self._batch_written is None:
            self._batch_written = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._batch_written)

    def _take_batch(self) -> bytes | None:
        """The open batch as one frame plaintext (and wake senders waiting for room)."""
        if not self._batch:
            return None
        batch, self._batch, self._batch_size = self._batch, [], 0
        waiting, self._batch_written = self._batch_written, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
        if len(batch) == 1:
            return b"\x00" + batch[0]
        return bytes([wire.FRAME_BATCH]) + b"".join(_LEN.pack(len(m)) + m for m in batch)

    async def _flush_batches(self) -> None:
        try:
            while self._batch and not self.closed:
                async with self._lock:
                    frame = self._take_batch()
                    if frame is not None:
                        await self.ws.send_bytes(self.channel.seal(frame))
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            log.info("lost the connection to %s while sending: %s", self.peer_id[:12], exc)
            await self.close(reason=f"send failed: {exc}")
        finally:
            self._flusher = None
            if self._batch_written is not None and not self._batch_written.done():
                self._batch_written.set_exception(PeerUnreachable(f"connection to {self.peer_id[:12]} is closed"))
                self._batch_written.exception()  # retrieved: waiters get it through their shield

    async def _send_large(self, data: bytes) -> None:
        size = len(data)
        if size > self.max_message:
            raise MessageTooLarge(f"message of {size} bytes exceeds the limit of {self.max_message}")
        try:
            async with self._lock:
                earlier = self._take_batch()
                if earlier is not None:
                    await self.ws.send_bytes(self.channel.seal(earlier))
                if size < self.max_frame - 1:
                    await self.ws.send_bytes(self.channel.seal(b"\x00" + data))
                else:
                    await self._write_chunks(data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            await self._lost(exc)

    async def _write_chunks(self, data: bytes) -> None:
        seal, ws = self.channel.seal, self.ws
        step = self.max_frame - 1
        view = memoryview(data)
        last = len(data) - step
        for offset in range(0, len(data), step):
            kind = b"\x02" if offset >= last else b"\x01"
            await ws.send_bytes(seal(kind + view[offset:offset + step]))

    async def _lost(self, exc: BaseException) -> None:
        await self.close(reason=f"send failed: {exc}")
        raise PeerUnreachable(f"lost the connection to {self.peer_id[:12]}: {exc}") from None

    # -- receiving -------------------------------------------------------------
    async def run(self) -> None:
        """Read until the connection closes; returns the close reason."""
        ws = self.ws
        self._arm_heartbeat()
        try:
            while True:
                self.idle = True
                frame = await ws.receive()
                self.idle = False
                if frame.type is _BINARY:
                    if frame.extra is _inbox.FROM_INBOX:   # inline() began with this frame
                        kind, data = frame.data
                        if kind == _inbox.AWAIT:
                            await _inbox.finish(*data)
                            continue
                        if kind == _inbox.RAISE:
                            raise data
                    else:
                        self._received += 1
                        data = self._open(frame.data)
                    if data is None:
                        continue
                    if isinstance(data, list):
                        self._tokens -= len(data)
                        if self._tokens < 0:
                            await self._throttle()
                        for one in data:
                            pending = self._deliver(one)
                            if pending is not None:
                                await pending
                        continue
                    self._tokens -= 1
                    if self._tokens < 0:
                        await self._throttle()
                    pending = self._deliver(data)
                    if pending is not None:
                        await pending
                elif frame.type is _PING:  # answered here: the sockets run without autoping
                    self._received += 1
                    self._tokens -= 1
                    if self._tokens < 0:
                        await self._throttle()
                    await ws.pong(frame.data)
                elif frame.type is _PONG:
                    self._received += 1
                elif frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.CLOSED):
                    if not self.close_reason:
                        why = frame.extra if frame.type == aiohttp.WSMsgType.CLOSE else ""
                        self.close_reason = f"closed by peer: {why}" if why else "closed by peer"
                    break
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    exc = ws.exception()
                    if isinstance(exc, aiohttp.WebSocketError) and exc.code == 1009:
                        self.close_reason = "peer sent a frame over the size limit"
                    else:
                        self.close_reason = f"connection error: {exc}"
                    break
                else:
                    await self.close(CLOSE_PROTOCOL, "text frames are not part of the protocol")
                    break
        except _ProtocolViolation as exc:
            self._drop_parts()  # give the budget back now, not after the close handshake
            await self.close(exc.code, str(exc))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close_reason = f"connection lost: {exc}"
        finally:
            self.idle = False
            self._drop_parts()
            self._disarm_heartbeat()
            self._closed.set()
            if not ws.closed:
                await ws.close()

    # -- liveness ----------------------------------------------------------------
    def _arm_heartbeat(self) -> None:
        if self.heartbeat:
            self._beat = asyncio.get_running_loop().call_later(self.heartbeat / 2, self._tick)

    def _disarm_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _tick(self) -> None:
        """Every heartbeat/2 s: two silent ticks send a PING, a third closes the connection."""
        seen, silent = self._beat_state
        silent = 0 if self._received != seen else silent + 1
        self._beat_state = (self._received, silent)
        if silent >= 3:
            self._beat = None
            log.info("closing %s: no answer to a heartbeat within %g s", self.peer_id[:12],
                     self.heartbeat / 2)
            self._closer = asyncio.ensure_future(self.close(
                CLOSE_SILENT, f"no answer to a heartbeat within {self.heartbeat / 2:g} s"))
            return
        if silent == 2 and self._pinger is None:
            self._pinger = asyncio.ensure_future(self._ping())
        self._arm_heartbeat()

    async def _ping(self) -> None:
        try:
            await self.ws.ping()
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            log.debug("heartbeat to %s failed: %s", self.peer_id[:12], exc)
        finally:
            self._pinger = None

    def inline(self, frame: bytes) -> None:
        """One binary frame, from the inbox while run() idles (see core.net.inbox): the
        same steps as run() takes; what would need an await (the rate limit's sleep, a
        send that waits, a batch) or an error is queued for run(), in order."""
        self._received += 1
        inbox = self.inbox
        try:
            data = self._open(frame)
            if data is None:
                return
            if self._tokens < 1 or isinstance(data, list):
                inbox.push(_inbox.OPENED, data)
                return
            self._tokens -= 1
            try:
                msg = wire.decode(data, self.limits.max_receive)
            except CoveyError:
                pending = self._deliver(data)   # decodes again: counts the bad message, answers it
            else:
                handler = self.on_message
                pending = handler(self, msg) if handler is not None else None
            if pending is not None and pending is not SENT:
                # Its first step runs now, as when run() awaited it at once (a reply is written
                # before a task scheduled meanwhile, e.g. a ban's close, runs); run() finishes it.
                started = _inbox.start(pending)
                if started is not None:
                    inbox.push(_inbox.AWAIT, started)
        except Exception as exc:  # run() raises it: the same outcome as a frame it read itself
            inbox.push(_inbox.RAISE, exc)

    async def _throttle(self) -> None:
        """Refill the token bucket; sleep until it is no longer in debt."""
        limits = self.limits
        now = time.monotonic()
        self._tokens = min(limits.burst, self._tokens + (now - self._refilled_at) * limits.rate)
        self._refilled_at = now
        if self._tokens < 0:
            self.throttled += 1
            await asyncio.sleep(-self._tokens / limits.rate)

    def _open(self, frame: bytes) -> bytes | list[bytes] | None:
        try:
            plain = self.channel.open(frame)
        except MalformedMessage as exc:
            raise _ProtocolViolation(CLOSE_PROTOCOL, str(exc)) from None
        if not plain:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "empty frame")
        kind = plain[0]
        if kind == wire.FRAME_WHOLE and not self._parts:
            if len(plain) > self._max_whole:
                raise _ProtocolViolation(CLOSE_TOO_LARGE, f"message exceeds the limit of "
                                                          f"{self.limits.max_receive} bytes")
            return plain[1:]
        if kind == wire.FRAME_BATCH and not self._parts:
            return _split_batch(plain)
        if kind not in (wire.FRAME_PART, wire.FRAME_END) and not (kind == wire.FRAME_WHOLE and self._parts):
            raise _ProtocolViolation(CLOSE_PROTOCOL, f"unknown frame kind {kind}")
        if kind == wire.FRAME_WHOLE:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "a whole message interrupted a chunked one")
        size = len(plain) - 1
        self._parts_size += size
        if self._parts_size > self.limits.max_receive:
            raise _ProtocolViolation(CLOSE_TOO_LARGE, f"message exceeds the limit of "
                                                      f"{self.limits.max_receive} bytes")
        if not self.budget.take(size):
            raise _ProtocolViolation(CLOSE_BUSY, "this node holds too many unfinished messages "
                                                 f"({self.budget.limit} bytes); retry later")
        self._held += size
        if self.limits.unknown:
            if not self.unknown_budget.take(size):
                raise _ProtocolViolation(CLOSE_BUSY, "this node holds too many unfinished messages from "
                                                     f"unknown peers ({self.unknown_budget.limit} bytes); "
                                                     "retry later")
            self._held_unknown += size
        if not self._parts:
            self._parts_timer = asyncio.get_running_loop().call_later(self.partial_timeout,
                                                                      self._parts_expired)
        self._parts.append(plain[1:])
        if kind == wire.FRAME_PART:
            return None
        data = b"".join(self._parts)
        self._drop_parts()
        return data

    def _drop_parts(self) -> None:
        """Forget the unfinished message and give its bytes back to the budget."""
        self._parts, self._parts_size = [], 0
        self.budget.give(self._held)
        self.unknown_budget.give(self._held_unknown)
        self._held = self._held_unknown = 0
        if self._parts_timer is not None:
            self._parts_timer.cancel()
            self._parts_timer = None

    def _parts_expired(self) -> None:
        self._parts_timer = None
        self._drop_parts()
        log.info("closing %s: an unfinished message took longer than %g s", self.peer_id[:12],
                 self.partial_timeout)
        self._closer = asyncio.ensure_future(self.close(
            CLOSE_TOO_SLOW, f"an unfinished message took longer than {self.partial_timeout:g} s"))

    def _deliver(self, data: bytes) -> Awaitable[None] | None:
        """Decode and hand over one message; returns what must be awaited, if anything
        (sync on the hot path: a handler that returns None costs no coroutine)."""
        try:
            msg = wire.decode(data, self.limits.max_receive)
        except CoveyError as exc:
            self.bad_messages += 1
            log.info("malformed message from %s: %s", self.peer_id[:12], exc)
            if self.bad_messages > MAX_BAD_MESSAGES:
                raise _ProtocolViolation(CLOSE_PROTOCOL, "too many malformed messages") from None
            return self.send(wire.Message("error", {"code": exc.code, "message": str(exc)}))
        handler = self.on_message
        if handler is not None:
            return handler(self, msg)
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with a code and a reason the other side can show."""
        self.close_reason = self.close_reason or reason
        if not self.ws.closed:
            try:
                await self.ws.close(code=code, message=reason.encode()[:120])
            except (ConnectionError, RuntimeError) as exc:
                log.debug("close of %s failed: %s", self.peer_id[:12], exc)
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


def _split_batch(plain: bytes) -> list[bytes]:
    """The messages of a batch frame: [4-byte length][message], repeated, nothing left over."""
    messages, offset, end = [], 1, len(plain)
    while offset < end:
        if offset + 4 > end:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "truncated batch frame")
        (length,) = _LEN.unpack_from(plain, offset)
        offset += 4
        if length == 0 or offset + length > end:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "batch frame lengths do not add up")
        messages.append(plain[offset:offset + length])
        offset += length
    if not messages:
        raise _ProtocolViolation(CLOSE_PROTOCOL, "empty batch frame")
    return messages


class _ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code

