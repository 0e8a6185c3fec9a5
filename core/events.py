"""A typed, in-process event stream.

Services ``emit`` events; the GUI, the control API and tests ``subscribe``
(a queue) or ``on`` (a callback). Emitting never blocks: a slow queue
subscriber drops its oldest events rather than stall the node.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("covey.events")

# Event names used across the core (keep this list the one place to look).
PEER_CONNECTED = "peer_connected"
PEER_DISCONNECTED = "peer_disconnected"
PEER_DISCOVERED = "peer_discovered"
PEER_LOST = "peer_lost"            # its LAN beacons stopped
PEER_ADDED = "peer_added"
PEER_REMOVED = "peer_removed"
TIER_CHANGED = "tier_changed"
PEER_BANNED = "peer_banned"
PEER_UNBANNED = "peer_unbanned"
REPUTATION_CHANGED = "reputation_changed"
MESSAGE_REJECTED = "message_rejected"
CHAT_FILE = "chat_file"            # a file offer or transfer changed (core.chat.files): {peer, file, state,
                                  # done, total (bytes), direction: in|out}; never the file's name
ERROR = "error"
NODE_STARTED = "node_started"
NODE_STOPPING = "node_stopping"
SETTINGS_CHANGED = "settings_changed"
TOR_STATUS = "tor_status"        # bootstrap progress, running, onion
ML_ROUND = "ml_round"
ML_STATE = "ml_state"
TASK_CHANGED = "task_changed"    # a delegated task was sent, answered or served (core.delegation)
KNOWLEDGE_PACKET = "knowledge_packet"      # a packet was published here or accepted from a peer
KNOWLEDGE_REJECTED = "knowledge_rejected"  # a packet from a peer was refused (reason; rate limited per peer)
# chat (core.chat.service): none carries message text; read it from the service
CHAT_MESSAGE = "chat_message"          # {peer, id, direction: in|out}; a group's also {group}
CHAT_STATE = "chat_state"              # {peer, id, state: sent|delivered|read|failed}; a group's {group, id, state}
CHAT_TYPING = "chat_typing"            # {peer, typing}
CHAT_TIMER = "chat_timer"              # {peer, timer, by: me|peer}
CHAT_CLOSED = "chat_closed"            # {peer, by: me|peer|both}
CHAT_EXPIRED = "chat_expired"          # {peer, ids}
CHAT_REQUEST = "chat_request"          # {peer, name}: a contact request (its text via requests())
CHAT_KEY_CHANGED = "chat_key_changed"  # {peer, verified_peer, name}
CHAT_VERIFIED = "chat_verified"        # {peer, retired: [peers no longer verified]}: the user marked it
CHAT_GROUP = "chat_group"              # {group, name, action, version, members} (core.chat.groups;
                                        # an invitation's also {creator, expires_at}, a creator's {peer})


@dataclass(frozen=True)
class Event:
    """One thing that happened: a name, a data map and when."""
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    """Fan-out of events to queues and callbacks."""

    def __init__(self, queue_size: int = 1000):
        self._queues: list[asyncio.Queue] = []
        # Callbacks by the event name they want (None: every event), each with its
        # registration number: an event looks up only its own listeners, in the order they came.
        self._callbacks: dict[str | None, list[tuple[int, Callable[[Event], Any]]]] = {}
        self._order = itertools.count()
        self._queue_size = queue_size

    def emit(self, name: str, /, **data: Any) -> Event:
        """Deliver an event to every subscriber; never blocks, never raises."""
        event = Event(name, data)
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()  # drop the oldest: a slow reader must not stall the node
            queue.put_nowait(event)
        named, every = self._callbacks.get(name), self._callbacks.get(None)
        entries = sorted(named + every) if named and every else tuple(named or every or ())
        for _, callback in entries:
            try:
                callback(event)
            except Exception:  # a broken listener must not break the emitter
                log.exception("event listener failed for %s", event.name)
        return event

    def subscribe(self) -> asyncio.Queue:
        """A queue that receives every event from now on; call ``unsubscribe`` when done."""
        queue: asyncio.Queue = asyncio.Queue(self._queue_size)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def on(self, name: str | None, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for events named ``name`` (None: all). Returns an unsubscribe function."""
        entry = (next(self._order), callback)
        self._callbacks.setdefault(name, []).append(entry)

        def remove() -> None:
            entries = self._callbacks.get(name)
            if entries is not None and entry in entries:
                entries.remove(entry)
        return remove

    async def wait_for(self, name: str, predicate: Callable[[Event], bool] = lambda e: True,
                       timeout: float = 10.0) -> Event:
        """Wait for the next event named ``name`` that satisfies ``predicate``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def listener(event: Event) -> None:
            if not future.done() and predicate(event):
                future.set_result(event)

        remove = self.on(name, listener)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            remove()
