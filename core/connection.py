"""One authenticated, protected connection to a peer over a WebSocket.

Sending: messages are encoded, split into frames of at most ``max_frame``
bytes, sealed by the channel and written in order under one lock. The lock
is also the per-peer send queue: callers wait their turn, and a caller finds
the queue full (``RateLimited``) when more than ``max_queued`` bytes wait,
which is the backpressure a slow peer puts on its senders.

Receiving: ``run()`` reads frames, opens them, reassembles messages up to
``max_message`` bytes and hands each decoded message to ``on_message``.
A frame that fails authentication, a message over the cap or a protocol
violation closes the connection with a reason; a malformed message body or
an unknown type gets an error reply and the connection stays up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

import aiohttp

from . import wire
from .errors import CoveyError, MalformedMessage, MessageTooLarge, PeerUnreachable, RateLimited
from .handshake import Channel

log = logging.getLogger("covey.connection")

CLOSE_PROTOCOL = 4002   # protocol violation (bad frame, bad auth tag)
CLOSE_TOO_LARGE = 4009  # message over the cap
CLOSE_POLICY = 4003     # refused by policy (banned, rate limited)
CLOSE_REPLACED = 4010   # a newer connection to the same peer replaced this one
CLOSE_SHUTDOWN = 4011   # node shutting down
MAX_BAD_MESSAGES = 20   # malformed messages tolerated before closing


class PeerConnection:
    """An authenticated channel to one peer (either direction)."""

    def __init__(self, ws, channel: Channel, peer_id: str, peer_name: str, *, initiator: bool,
                 remote: str, listen_port: int, max_frame: int, max_message: int,
                 max_queued: int = 256 << 20):
        self.ws = ws
        self.channel = channel
        self.peer_id = peer_id
        self.peer_name = peer_name
        self.initiator = initiator
        self.remote = remote                 # host:port of the socket
        self.listen_port = listen_port       # the peer's advertised listen port (0: none)
        self.mode = channel.mode
        self.max_frame = max_frame
        self.max_message = max_message
        self.max_queued = max_queued
        self.opened_at = time.time()
        self.on_message: Callable[["PeerConnection", wire.Message], Awaitable[None] | None] | None = None
        self.close_reason = ""
        self.bad_messages = 0
        self._lock = asyncio.Lock()
        self._queued = 0
        self._closed = asyncio.Event()
        self._parts: list[bytes] = []
        self._parts_size = 0

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or self.ws.closed

    # -- sending ---------------------------------------------------------------
    def send(self, msg: wire.Message) -> Awaitable[None]:
        """Encode, chunk, seal and write one message (in order with other sends); await it.

        A plain function returning the send coroutine: one coroutine less per message."""
        return self.send_raw(wire.encode(msg))

    async def send_raw(self, data: bytes) -> None:
        # Hot path: kept flat (no nested coroutines, the lock taken without
        # ``async with``) because every message pays for each layer.
        ws = self.ws
        if self._closed.is_set() or ws.closed:
            raise PeerUnreachable(f"connection to {self.peer_id[:12]} is closed")
        size = len(data)
        if size > self.max_message:
            raise MessageTooLarge(f"message of {size} bytes exceeds the limit of {self.max_message}")
        if self._queued + size > self.max_queued and self._queued:
            raise RateLimited(f"send queue to {self.peer_id[:12]} is full ({self._queued} bytes waiting)")
        self._queued += size
        lock = self._lock
        try:
            await lock.acquire()
            try:
                if size < self.max_frame:
                    await ws.send_bytes(self.channel.seal(b"\x00" + data))
                else:
                    await self._write_chunks(data)
            finally:
                lock.release()
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            await self.close(reason=f"send failed: {exc}")
            raise PeerUnreachable(f"lost the connection to {self.peer_id[:12]}: {exc}") from None
        finally:
            self._queued -= size

    async def _write_chunks(self, data: bytes) -> None:
        seal, ws = self.channel.seal, self.ws
        step = self.max_frame - 1
        view = memoryview(data)
        last = len(data) - step
        for offset in range(0, len(data), step):
            kind = b"\x02" if offset >= last else b"\x01"
            await ws.send_bytes(seal(kind + view[offset:offset + step]))

    # -- receiving -------------------------------------------------------------
    async def run(self) -> None:
        """Read until the connection closes; returns the close reason."""
        ws = self.ws
        try:
            while True:
                frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.BINARY:
                    data = self._open(frame.data)
                    if data is None:
                        continue
                    pending = self._deliver(data)
                    if pending is not None:
                        await pending
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
            await self.close(exc.code, str(exc))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close_reason = f"connection lost: {exc}"
        finally:
            self._closed.set()
            if not ws.closed:
                await ws.close()

    def _open(self, frame: bytes) -> bytes | None:
        try:
            plain = self.channel.open(frame)
        except MalformedMessage as exc:
            raise _ProtocolViolation(CLOSE_PROTOCOL, str(exc)) from None
        if not plain:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "empty frame")
        kind = plain[0]
        if kind == wire.FRAME_WHOLE and not self._parts:
            return plain[1:]
        if kind not in (wire.FRAME_PART, wire.FRAME_END) and not (kind == wire.FRAME_WHOLE and self._parts):
            raise _ProtocolViolation(CLOSE_PROTOCOL, f"unknown frame kind {kind}")
        if kind == wire.FRAME_WHOLE:
            raise _ProtocolViolation(CLOSE_PROTOCOL, "a whole message interrupted a chunked one")
        self._parts_size += len(plain) - 1
        if self._parts_size > self.max_message:
            raise _ProtocolViolation(CLOSE_TOO_LARGE, f"message exceeds the limit of {self.max_message} bytes")
        self._parts.append(plain[1:])
        if kind == wire.FRAME_PART:
            return None
        data = b"".join(self._parts)
        self._parts, self._parts_size = [], 0
        return data

    def _deliver(self, data: bytes) -> Awaitable[None] | None:
        """Decode and hand over one message; returns what must be awaited, if anything
        (sync on the hot path: a handler that returns None costs no coroutine)."""
        try:
            msg = wire.decode(data, self.max_message)
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


class _ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code

