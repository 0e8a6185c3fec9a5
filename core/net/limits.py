"""Flow limits against floods: what one peer may cost the node.

- :class:`PeerLimits`: per connection, decided from the peer's tier before
  anything it sends is read: the capabilities it holds, its message rate
  (token bucket), the largest message it may send and how many handler
  tasks it may have in flight.
- :class:`Budget`: bytes held node-wide (unfinished chunked messages).
- :class:`Gate`: a bounded count of tasks in flight; waiting on it is backpressure.
- :class:`LogLimiter` / :class:`AcceptErrorFilter`: logging that an attacker
  cannot turn into an amplifier.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from core.peers import POLICY, Capability, Tier

log = logging.getLogger("covey.limits")


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """What one connected peer may do and cost."""
    allowed: frozenset[Capability]
    rate: float          # messages per second (token refill)
    burst: float         # bucket size
    max_receive: int     # bytes per inbound (reassembled) message
    tasks: int           # async handler tasks in flight
    unknown: bool        # counts against the node-wide cap on UNKNOWN connections


def limits_for(settings, tier: Tier, banned: bool = False, stranger: bool | None = None) -> PeerLimits:
    """The limits of a peer of ``tier`` under ``settings`` (banned: no capability at all).

    ``stranger`` (default: the tier is UNKNOWN) gets the tight rate and message cap; an
    UNKNOWN peer the user added by hand is not a stranger."""
    unknown = tier is Tier.UNKNOWN if stranger is None else stranger
    rate = settings.unknown_rate if unknown else settings.peer_rate
    return PeerLimits(allowed=frozenset() if banned else POLICY[tier], rate=rate, burst=max(1.0, rate),
                      max_receive=min(settings.unknown_max_message, settings.max_message) if unknown
                      else settings.max_message,
                      tasks=settings.handler_tasks, unknown=unknown)


class Budget:
    """A node-wide count of bytes held, with a hard limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.refused = 0

    def take(self, n: int) -> bool:
        """Reserve ``n`` bytes; False (nothing reserved) when that would pass the limit."""
        if self.used + n > self.limit:
            self.refused += 1
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class Gate:
    """At most ``size`` tasks in flight; ``wait()`` returns once one more may start."""

    __slots__ = ("size", "used", "_waiters")

    def __init__(self, size: int):
        self.size = size
        self.used = 0
        self._waiters: list[asyncio.Future] = []

    @property
    def full(self) -> bool:
        return self.used >= self.size

    async def wait(self) -> None:
        while self.used >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def leave(self) -> None:
        self.used -= 1
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break


class LogLimiter:
    """At most ``per_window`` records per key per ``window`` seconds; the rest are counted.

    ``allow(key)`` returns None to suppress, else how many were suppressed since
    the last allowed record (to mention in it). Keys are bounded (oldest dropped).
    """

    def __init__(self, per_window: int = 5, window: float = 10.0, max_keys: int = 1024,
                 clock=time.monotonic):
        self.per_window, self.window, self.max_keys = per_window, window, max_keys
        self._clock = clock
        self._state: dict[str, list] = {}   # key -> [window start, count, suppressed]

    def allow(self, key: str) -> int | None:
        now = self._clock()
        state = self._state.get(key)
        if state is None or now - state[0] >= self.window:
            suppressed = state[2] if state is not None else 0
            if state is None and len(self._state) >= self.max_keys:
                self._state.pop(next(iter(self._state)))
            self._state[key] = [now, 1, 0]
            return suppressed
        if state[1] < self.per_window:
            state[1] += 1
            suppressed, state[2] = state[2], 0
            return suppressed
        state[2] += 1
        return None


class AcceptErrorFilter(logging.Filter):
    """Rate-limits asyncio's "socket.accept() out of system resource" records (fd exhaustion)."""

    def __init__(self, limiter: LogLimiter | None = None):
        super().__init__()
        self.limiter = limiter or LogLimiter(per_window=1, window=30.0)

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        suppressed = self.limiter.allow("accept")
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} more suppressed)"
        record.exc_info = None  # the traceback is the same every time
        record.exc_text = None
        return True


_accept_filter: AcceptErrorFilter | None = None


def limit_accept_errors() -> AcceptErrorFilter:
    """Install (once) the accept-error filter on the asyncio logger."""
    global _accept_filter
    if _accept_filter is None:
        _accept_filter = AcceptErrorFilter()
        logging.getLogger("asyncio").addFilter(_accept_filter)
    return _accept_filter


def raise_fd_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) after, None if unsupported."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)
