"""Contact requests waiting for the user's answer: memory only, bounded, rate limited.

One pending request per peer (a newer one replaces its text), at most
``max_pending`` in all; a peer may send ``per_peer`` requests per
``per_peer_window`` seconds and all peers together ``total_per_minute``.
The per-peer history is bounded too (least recently used peers forgotten).
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from core.errors import RateLimited


@dataclass(frozen=True)
class ContactRequest:
    peer: str
    name: str
    text: str
    at: float

    def __reduce_ex__(self, protocol):
        raise TypeError("contact requests stay in memory")

    def view(self) -> dict:
        return {"peer": self.peer, "name": self.name, "text": self.text, "at": self.at}


class Requests:
    """See the module docstring."""

    def __init__(self, *, max_pending: int = 64, per_peer: int = 3, per_peer_window: float = 600.0,
                 total_per_minute: int = 30, max_peers: int = 1024,
                 clock: Callable[[], float] = time.monotonic):
        self.max_pending = max_pending
        self.per_peer, self.per_peer_window = per_peer, per_peer_window
        self.total_per_minute = total_per_minute
        self.max_peers = max_peers
        self._clock = clock
        self.pending: "OrderedDict[str, ContactRequest]" = OrderedDict()
        self._history: "OrderedDict[str, deque]" = OrderedDict()
        self._recent: deque = deque()

    def add(self, peer: str, name: str, text: str) -> ContactRequest:
        """Hold a request from ``peer``; RateLimited (nothing held) when a bound is reached."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        if len(self._recent) >= self.total_per_minute:
            raise RateLimited("this node takes no more contact requests this minute; retry later")
        history = self._history.get(peer)
        if history is not None:
            while history and now - history[0] >= self.per_peer_window:
                history.popleft()
            if len(history) >= self.per_peer:
                raise RateLimited(f"at most {self.per_peer} contact requests per "
                                  f"{self.per_peer_window / 60:g} minutes from one peer")
        if peer not in self.pending and len(self.pending) >= self.max_pending:
            raise RateLimited(f"{len(self.pending)} contact requests already wait for an answer; "
                              f"retry later")
        if history is None:
            history = self._history[peer] = deque()
            while len(self._history) > self.max_peers:
                self._history.popitem(last=False)
        self._history.move_to_end(peer)
        history.append(now)
        self._recent.append(now)
        request = ContactRequest(peer, name, text, time.time())
        self.pending[peer] = request
        self.pending.move_to_end(peer)
        return request

    def find(self, ref: str) -> ContactRequest | None:
        """The one pending request whose peer id, id prefix (>= 4) or name is ``ref``."""
        text = (ref or "").strip()
        lowered = text.lower()
        found = [r for r in self.pending.values()
                 if r.peer == lowered or r.name == text or (len(lowered) >= 4 and r.peer.startswith(lowered))]
        return found[0] if len(found) == 1 else None

    def pop(self, peer: str) -> ContactRequest | None:
        return self.pending.pop(peer, None)

    def list(self) -> list[ContactRequest]:
        return list(self.pending.values())

    def clear(self) -> None:
        self.pending.clear()
