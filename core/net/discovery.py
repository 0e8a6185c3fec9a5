"""LAN discovery: signed UDP multicast beacons.

Every node sends a small beacon to a multicast group (239.255.0.1:8103 by
default) every ``interval`` seconds and listens on the same group. A beacon
says "node <id> named <name> listens on port <port>", is signed with the
node's Ed25519 identity and carries a timestamp and a random nonce.

Why multicast beacons rather than DNS-SD/zeroconf: no extra dependency, the
beacon is signed with the node's own identity, and it works the same inside a
container network. A forged beacon cannot make us dial an attacker under a
trusted name (the signature fails, and the handshake checks the key anyway).

The peer's address is the packet's *source* address plus the advertised
port; it is deliberately not a field of the packet, so a beacon cannot point
us at a third party. ``advertise_host`` chooses which local address our
beacons are sent from, and so the address other nodes will record for us.

Every datagram is checked before use: size (<= 1024 bytes), msgpack shape
and types, version, id format, fingerprint, port range, name (<= 64
printable characters), clock skew (<= 120 s), signature, and replay (a
nonce seen before, or a timestamp not newer than the last one accepted for
that id). Bad datagrams are counted in ``Discovery.rejected`` (by reason in
``Discovery.rejected_reasons``), logged at debug level, and never raise out
of the protocol. At most ``max_per_source`` datagrams per source address and
``max_per_host`` per source IP are processed per interval; the rest are
dropped (reason ``rate_limited``) before any decoding or signature check.

What a beacon does not protect against: anyone on the LAN can re-send a
fresh beacon they captured, from their own address, before the original's
next one; we then record that node at the wrong address until its next
beacon. Dialling it there fails the handshake (the key is checked), so the
cost is a failed connection, never a wrong identity.

Sockets: the listening socket sets SO_REUSEADDR and SO_REUSEPORT so several
nodes on one host share the port, binds to the group address where the OS
allows it (Linux: only datagrams for that group arrive, no unicast), and
joins the group on ``interface``. The sending socket uses TTL 1 (the beacon
never leaves the LAN) and IP_MULTICAST_LOOP=1 so nodes on the same host see
each other.

Loopback, as measured on Linux (Debian, kernel with ``lo`` lacking the
MULTICAST flag, and inside a loopback-only ``unshare -n`` namespace):

- Joining the group on 127.0.0.1 (``IP_ADD_MEMBERSHIP`` with interface
  address 127.0.0.1) and sending with ``IP_MULTICAST_IF`` = 127.0.0.1 works
  without the MULTICAST flag on ``lo`` and without any multicast route: no
  ``ip route add`` and no root are needed. The datagrams stay on ``lo`` (the
  eth0 counters do not move). Tests use ``interface="127.0.0.1"``.
- Joining on 0.0.0.0 lets the kernel pick the interface from the route to
  the group; on a machine with only loopback (no default route) that fails
  with ENODEV. Discovery then falls back to 127.0.0.1 and logs it, so nodes
  on one offline machine still find each other.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import logging
import os
import random
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import msgpack

from core.errors import (
    CoveyError,
    ForeignBeacon,
    MalformedMessage,
    MessageTooLarge,
    ReplayDetected,
    StaleMessage,
    TooManyPeers,
    UnsupportedVersion,
)
from core.identity import fingerprint_of, verify

log = logging.getLogger("covey.discovery")

DEFAULT_GROUP = "239.255.0.1"
DEFAULT_PORT = 8103
BEACON_DOMAIN = b"covey/v1/beacon\0"
BEACON_VERSION = 1
MAX_DATAGRAM = 1024
MAX_SKEW = 120.0
MAX_NAME = 64
NONCE_SIZE = 16
SIGNATURE_SIZE = 64
LOOPBACK = "127.0.0.1"

_FIELDS = frozenset({"v", "id", "name", "port", "fp", "ts", "nonce", "sig"})
_ID_RE = re.compile(r"[0-9a-f]{64}")
_MAX_SOURCES = 4096     # distinct sources tracked per rate window (bounds memory under spoofing)
_MAX_PEERS = 1024       # distinct live peers kept (anyone can mint identities)
_MAX_NONCES = 16384     # nonces remembered for replay detection


@dataclass(frozen=True)
class Beacon:
    """A node seen on the LAN: who (id, name, fingerprint), where (host, port), when (its ts)."""
    id: str
    name: str
    host: str
    port: int
    fingerprint: str
    ts: float


# -- wire format -----------------------------------------------------------------
def _signed_bytes(fields: dict[str, Any]) -> bytes:
    """What the signature covers: domain + canonical msgpack of the map without ``sig``."""
    body = {key: fields[key] for key in sorted(fields) if key != "sig"}
    return BEACON_DOMAIN + msgpack.packb(body, use_bin_type=True)


def encode_beacon(identity, port: int, *, ts: float | None = None, nonce: bytes | None = None) -> bytes:
    """A signed beacon datagram announcing ``identity`` listening on ``port``."""
    fields: dict[str, Any] = {
        "v": BEACON_VERSION,
        "id": identity.id,
        "name": beacon_name(identity.name),
        "port": int(port),
        "fp": identity.fingerprint,
        "ts": float(time.time() if ts is None else ts),
        "nonce": os.urandom(NONCE_SIZE) if nonce is None else nonce,
    }
    fields["sig"] = identity.sign(_signed_bytes(fields))
    return msgpack.packb(fields, use_bin_type=True)


def beacon_name(name: str | None) -> str:
    """``name`` made fit for a beacon: printable characters only, at most 64."""
    clean = "".join(ch for ch in (name or "") if ch.isprintable())
    return clean[:MAX_NAME]


def _reject_ext(code: int, data: bytes):
    raise MalformedMessage(f"beacon contains a msgpack extension type ({code})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_beacon(data: bytes, host: str, *, now: float | None = None, max_skew: float = MAX_SKEW) -> tuple[Beacon, bytes]:
    """Validate one datagram from ``host``; return the beacon and its nonce.

    Raises MessageTooLarge, MalformedMessage, UnsupportedVersion,
    ForeignBeacon, StaleMessage or InvalidSignature. Replay is the caller's
    job (it needs memory).
    """
    if len(data) > MAX_DATAGRAM:
        raise MessageTooLarge(f"beacon of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        fields = msgpack.unpackb(
            data, raw=False, strict_map_key=True, ext_hook=_reject_ext,
            max_map_len=len(_FIELDS), max_array_len=0,
            max_str_len=MAX_DATAGRAM, max_bin_len=MAX_DATAGRAM,
        )
    except CoveyError:
        raise
    except Exception as exc:  # msgpack raises many types for garbage input
        raise MalformedMessage(f"beacon is not valid msgpack: {exc.__class__.__name__}") from exc
    if not isinstance(fields, dict):
        raise MalformedMessage("beacon is not a map")
    version = fields.get("v")
    if not _is_int(version):
        raise MalformedMessage("beacon has no integer version")
    if version != BEACON_VERSION:
        raise UnsupportedVersion(f"beacon version {version} is not supported (this node speaks {BEACON_VERSION})")
    if set(fields) != _FIELDS:
        raise MalformedMessage(f"beacon fields are {sorted(fields)}, expected {sorted(_FIELDS)}")

    peer_id, name, port, fp = fields["id"], fields["name"], fields["port"], fields["fp"]
    ts, nonce, sig = fields["ts"], fields["nonce"], fields["sig"]
    if not isinstance(peer_id, str) or not _ID_RE.fullmatch(peer_id):
        raise MalformedMessage("beacon id is not 64 lowercase hex digits")
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.isprintable():
        raise MalformedMessage(f"beacon name must be at most {MAX_NAME} printable characters")
    if not _is_int(port) or not 1 <= port <= 65535:
        raise MalformedMessage("beacon port is not in 1..65535")
    if not isinstance(fp, str) or fp != fingerprint_of(peer_id):
        raise ForeignBeacon("beacon fingerprint does not match its id")
    if not (isinstance(ts, float) or _is_int(ts)) or ts != ts:  # ts != ts: NaN
        raise MalformedMessage("beacon timestamp is not a number")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise MalformedMessage(f"beacon nonce is not {NONCE_SIZE} bytes")
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_SIZE:
        raise MalformedMessage(f"beacon signature is not {SIGNATURE_SIZE} bytes")

    now = time.time() if now is None else now
    if abs(now - ts) > max_skew:
        raise StaleMessage(f"beacon timestamp is {now - ts:+.0f} s off this node's clock (limit {max_skew:.0f} s)")
    verify(peer_id, _signed_bytes(fields), sig)  # raises InvalidSignature
    return Beacon(peer_id, name, host, port, fp, float(ts)), nonce


# -- rate limiting -----------------------------------------------------------------
class _RateLimiter:
    """Fixed-window counts per source address and per source IP."""

    def __init__(self, window: float, per_source: int, per_host: int):
        self.window = window
        self.per_source = per_source
        self.per_host = per_host
        self._started = time.monotonic()
        self._sources: collections.Counter = collections.Counter()
        self._hosts: collections.Counter = collections.Counter()

    def allow(self, addr: tuple[str, int]) -> bool:
        now = time.monotonic()
        if now - self._started >= self.window:
            self._started = now
            self._sources.clear()
            self._hosts.clear()
        host = addr[0]
        if addr not in self._sources and len(self._sources) >= _MAX_SOURCES:
            return False
        if self._sources[addr] >= self.per_source or self._hosts[host] >= self.per_host:
            return False
        self._sources[addr] += 1
        self._hosts[host] += 1
        return True


# -- sockets ---------------------------------------------------------------------
def _mreq(group: str, iface: str) -> bytes:
    return struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface))


def _open_listen_socket(group: str, port: int, iface: str) -> tuple[socket.socket, str]:
    """A non-blocking UDP socket bound to the group port and joined on ``iface``.

    Returns the socket and the interface address actually joined on (0.0.0.0
    falls back to loopback when the host has no multicast route).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform.startswith("linux"):
            sock.bind((group, port))  # only this group's datagrams, never unicast to the port
        else:
            sock.bind(("", port))
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreq(group, iface))
        except OSError as exc:
            if iface != "0.0.0.0" or exc.errno != errno.ENODEV:
                raise
            log.info("no route for multicast group %s (no network?): discovering on loopback only", group)
            iface = LOOPBACK
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreq(group, iface))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, iface


def _open_send_socket(iface: str, source: str) -> socket.socket:
    """A non-blocking UDP socket that sends to the group with TTL 1 and loopback on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if iface != "0.0.0.0":
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
        sock.bind((source, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, discovery: "Discovery"):
        self._discovery = discovery

    def datagram_received(self, data: bytes, addr) -> None:
        self._discovery._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery socket error: %s", exc)


class _Sender(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr) -> None:
        log.debug("ignored %d-byte unicast datagram from %s on the beacon send socket", len(data), addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("could not send discovery beacon: %s", exc)


def _ipv4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{what} must be an IPv4 address, got {value!r}") from None


# -- the service -------------------------------------------------------------------
class Discovery:
    """Announce this node on the LAN and keep a list of the nodes heard recently.

    ``on_found(beacon)`` fires when a node is first heard, and again when it
    changes address, port or name; ``on_lost(id)`` fires when its beacons
    stop for ``expire_after`` seconds.
    """

    def __init__(
        self,
        identity,
        listen_port: int,
        *,
        group: str = DEFAULT_GROUP,
        port: int = DEFAULT_PORT,
        interval: float = 5.0,
        expire_after: float | None = None,
        advertise_host: str | None = None,
        interface: str = "0.0.0.0",
        on_found: Callable[[Beacon], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        max_per_source: int = 4,
        max_per_host: int = 64,
        max_skew: float = MAX_SKEW,
    ):
        if not _is_int(listen_port) or not 1 <= listen_port <= 65535:
            raise ValueError(f"listen_port must be the node's real port (1..65535), got {listen_port!r}")
        if not _is_int(port) or not 1 <= port <= 65535:
            raise ValueError(f"discovery port must be in 1..65535, got {port!r}")
        if not _ipv4(group, "discovery group").is_multicast:
            raise ValueError(f"discovery group must be an IPv4 multicast address (224.0.0.0/4), got {group!r}")
        _ipv4(interface, "discovery interface")
        if advertise_host is not None:
            _ipv4(advertise_host, "advertise_host")
        if not interval > 0:
            raise ValueError(f"discovery interval must be positive, got {interval!r}")
        expire_after = 3 * interval if expire_after is None else expire_after
        if not expire_after > 0:
            raise ValueError(f"expire_after must be positive, got {expire_after!r}")
        if beacon_name(identity.name) != (identity.name or ""):
            log.warning("node name %r is cut to %r in discovery beacons", identity.name, beacon_name(identity.name))

        self.identity = identity
        self.listen_port = listen_port
        self.group = group
        self.port = port
        self.interval = float(interval)
        self.expire_after = float(expire_after)
        self.advertise_host = advertise_host
        self.interface = interface
        self.on_found = on_found
        self.on_lost = on_lost
        self.max_skew = float(max_skew)
        self.rejected = 0
        self.rejected_reasons: collections.Counter[str] = collections.Counter()
        self.sent = 0
        self.heard_self = 0  # our own beacons looped back: proof that the group works on this interface

        self._limiter = _RateLimiter(self.interval, max_per_source, max_per_host)
        self._peers: dict[str, Beacon] = {}
        self._heard_at: dict[str, float] = {}   # id -> monotonic time of its last accepted beacon
        self._nonces: dict[bytes, float] = {}   # nonce -> monotonic time after which it may be forgotten
        self._rx: asyncio.DatagramTransport | None = None
        self._tx: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None
        self._joined_on: str | None = None

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def joined_on(self) -> str | None:
        """The interface address the group was joined on (None before start)."""
        return self._joined_on

    async def start(self) -> None:
        """Join the group and start beaconing (the first beacon goes out at once)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        rx_sock, iface = _open_listen_socket(self.group, self.port, self.interface)
        try:
            tx_sock = _open_send_socket(iface, self.advertise_host or iface)
        except BaseException:
            rx_sock.close()
            raise
        try:
            self._rx, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=rx_sock)
            self._tx, _ = await loop.create_datagram_endpoint(_Sender, sock=tx_sock)
        except BaseException:
            self._close_transports()
            rx_sock.close()
            tx_sock.close()
            raise
        self._joined_on = iface
        self._task = asyncio.create_task(self._run(), name="covey-discovery")
        log.info("discovery on %s:%d via %s, announcing port %d", self.group, self.port, iface, self.listen_port)

    async def stop(self) -> None:
        """Stop beaconing, close the sockets and forget the peers (no on_lost calls)."""
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            self._close_transports()
            self._peers.clear()
            self._heard_at.clear()
            self._nonces.clear()

    def _close_transports(self) -> None:
        for transport in (self._rx, self._tx):
            if transport is not None:
                transport.close()
        self._rx = self._tx = None

    async def __aenter__(self) -> "Discovery":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # -- what we know
    def peers(self) -> list[Beacon]:
        """The nodes heard within the last ``expire_after`` seconds, by name then id."""
        cutoff = time.monotonic() - self.expire_after
        fresh = [b for pid, b in self._peers.items() if self._heard_at[pid] >= cutoff]
        return sorted(fresh, key=lambda b: (b.name, b.id))

    # -- sending and expiry
    async def _run(self) -> None:
        sweep_every = min(self.interval, self.expire_after / 2)
        next_beacon = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_beacon:
                self._send_beacon()
                next_beacon = now + self.interval * random.uniform(0.9, 1.1)  # jitter: nodes drift apart
            self._expire(now)
            await asyncio.sleep(max(0.0, min(next_beacon - time.monotonic(), sweep_every)))

    def _send_beacon(self) -> None:
        if self._tx is None:
            return
        try:
            self._tx.sendto(encode_beacon(self.identity, self.listen_port), (self.group, self.port))
            self.sent += 1
        except OSError as exc:
            log.warning("could not send discovery beacon: %s", exc)
        except Exception:  # keep beaconing: one bad send must not end discovery
            log.exception("could not build the discovery beacon")

    def _expire(self, now: float) -> None:
        cutoff = now - self.expire_after
        for peer_id in [pid for pid, at in self._heard_at.items() if at < cutoff]:
            del self._heard_at[peer_id]
            del self._peers[peer_id]
            log.debug("discovery: %s went quiet", peer_id[:16])
            self._notify(self.on_lost, peer_id)
        if self._nonces:
            for nonce in [n for n, until in self._nonces.items() if until < now]:
                del self._nonces[nonce]

    # -- receiving
    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self._limiter.allow(addr):
            self._reject("rate_limited", addr, None)
            return
        try:
            beacon, nonce = decode_beacon(data, addr[0], max_skew=self.max_skew)
        except CoveyError as exc:
            self._reject(exc.code, addr, exc)
            return
        except Exception as exc:  # defence in depth: nothing from the network may break the node
            log.exception("unexpected error decoding a beacon from %s", addr)
            self._reject("error", addr, exc)
            return
        if beacon.id == self.identity.id:
            self.heard_self += 1
            return
        try:
            self._accept(beacon, nonce)
        except CoveyError as exc:
            self._reject(exc.code, addr, exc)

    def _accept(self, beacon: Beacon, nonce: bytes) -> None:
        now = time.monotonic()
        if nonce in self._nonces:
            raise ReplayDetected("beacon nonce seen before")
        known = self._peers.get(beacon.id)
        if known is not None and beacon.ts <= known.ts:
            raise ReplayDetected("beacon is not newer than the last one from this node")
        if known is None and len(self._peers) >= _MAX_PEERS:
            raise TooManyPeers(f"already tracking {_MAX_PEERS} nodes")
        if len(self._nonces) >= _MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]  # oldest first: dicts keep insertion order
        self._nonces[nonce] = now + 2 * self.max_skew
        self._peers[beacon.id] = beacon
        self._heard_at[beacon.id] = now
        if known is None or (known.host, known.port, known.name) != (beacon.host, beacon.port, beacon.name):
            log.debug("discovery: found %s (%s) at %s:%d", beacon.name, beacon.id[:16], beacon.host, beacon.port)
            self._notify(self.on_found, beacon)

    def _reject(self, reason: str, addr: tuple[str, int], exc: Exception | None) -> None:
        self.rejected += 1
        self.rejected_reasons[reason] += 1
        if reason == "rate_limited":
            if self.rejected_reasons[reason] & (self.rejected_reasons[reason] - 1) == 0:  # 1, 2, 4, 8...: no log flood
                log.debug("discovery: rate-limiting beacons from %s (%d dropped so far)", addr, self.rejected_reasons[reason])
            return
        log.debug("discovery: rejected beacon from %s: %s", addr, exc)

    @staticmethod
    def _notify(callback: Callable[[Any], None] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:  # a broken listener must not break discovery
            log.exception("discovery callback failed")

