"""Frames handled where they arrive: in the socket's data callback, not a task later.

aiohttp parses WebSocket frames in its protocol's ``data_received`` and queues
them for ``ws.receive()``; ``PeerConnection.run()`` then reads them, one task
wake-up (one more event-loop turn) per burst. :class:`Inbox` takes that
queue's place once the handshake is done (:func:`install`): while ``run()``
idles at ``ws.receive()`` with nothing queued, a binary frame goes straight to
its connection (``PeerConnection.inline``): request -> policy -> handler ->
reply written, or a reply -> its request's future, all inside the callback.
Everything else (control frames, frames that arrive while ``run()`` is busy,
work that must be awaited, errors) goes through the queue in arrival order,
and ``run()`` handles it as before; :func:`item` wraps what the connection
already did to a frame so ``run()`` can finish it.

The swap touches aiohttp internals (the queue and parser of the socket):
:func:`install` checks their shape and returns None when this aiohttp differs,
and the connection then simply runs without the shortcut.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

try:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
except ImportError:  # another aiohttp layout: no shortcut
    WebSocketDataQueue = WebSocketReader = None  # type: ignore[assignment]

log = logging.getLogger("covey.inbox")

_BINARY = aiohttp.WSMsgType.BINARY
FROM_INBOX = "covey:inbox"   # WSMessage.extra (compared by identity) of an item the connection queued
OPENED, AWAIT, RAISE = 0, 1, 2   # what such an item holds: opened frame, started coroutine, exception


def start(awaitable) -> tuple | None:
    """Run the first step of ``awaitable`` now (an eager start, as run() awaiting it at once
    did); None when that finished it, else (coroutine, what it waits on) for :func:`finish`."""
    coro = awaitable.__await__()
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return coro, waiting


async def finish(coro, waiting) -> None:
    """Drive a coroutine started by :func:`start` to its end, as its Task would have: resume
    it when what it waits on is done (it reads the outcome itself); a cancellation of the
    caller is thrown into it."""
    while True:
        try:
            if waiting is None:                       # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await asyncio.wait((waiting,))        # never raises the future's own error
        except BaseException as exc:  # our caller was cancelled: so is the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return


def item(kind: int, value: Any) -> aiohttp.WSMessage:
    """A queue entry for ``run()``: (kind, value) in a BINARY message marked FROM_INBOX."""
    return aiohttp.WSMessage(_BINARY, (kind, value), FROM_INBOX)


if WebSocketDataQueue is not None:
    class Inbox(WebSocketDataQueue):
        """aiohttp's frame queue with a shortcut to the connection (see the module doc)."""

        def __init__(self, protocol, limit: int, *, loop) -> None:
            super().__init__(protocol, limit, loop=loop)
            self.conn: Any = None   # the PeerConnection, once it exists

        def feed_data(self, data, size) -> None:
            conn = self.conn
            if conn is not None and conn.idle and data.type is _BINARY and not self._buffer:
                conn.inline(data.data)
                return
            WebSocketDataQueue.feed_data(self, data, size)

        def push(self, kind: int, value: Any) -> None:
            """Queue what the connection did to a frame, for ``run()`` to finish."""
            WebSocketDataQueue.feed_data(self, item(kind, value), 0)
else:  # pragma: no cover - only with an aiohttp without the Cython/py reader module
    Inbox = None  # type: ignore[assignment,misc]


def install(ws, max_msg_size: int, loop) -> Any:
    """Put an Inbox (and a parser feeding it) under ``ws``; None when not possible.

    Call it only while the peer sends nothing (between handshake messages): frames the
    old parser holds would be lost."""
    if Inbox is None:
        return None
    old = getattr(ws, "_reader", None)
    parser = getattr(ws, "_parser", None)
    protocol = getattr(old, "_protocol", None)
    if (type(old) is not WebSocketDataQueue or parser is None or protocol is None
            or getattr(protocol, "_payload_parser", None) is not parser or len(old._buffer)):
        log.debug("aiohttp's WebSocket internals differ: frames go through its queue")
        return None
    inbox = Inbox(protocol, max(1, old._limit // 2), loop=loop)
    new_parser = WebSocketReader(inbox, max_msg_size, compress=False, decode_text=True)
    protocol._payload_parser = new_parser
    if getattr(protocol, "_payload", None) is old:   # the client protocol also holds the queue
        protocol._payload = inbox
    ws._parser, ws._reader = new_parser, inbox
    return inbox
