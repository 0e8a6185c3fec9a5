"""``Node``: composes the services; the one async API the GUI and CLI use.

Services register message handlers with :meth:`Node.on_message` and talk to
peers with :meth:`Node.send` / :meth:`Node.request`; trust decisions go
through ``node.peers.check`` (the policy table lives in ``core.peers``).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal, overload

from . import events as ev
from core.net import inbox as _inbox
from core.net import wire
from .config import (MODE_RANK, Settings, check_network_key, load_settings, offered_modes, parse_network_key,
                     read_key_file, read_network_key, save_settings, with_changes, write_secret)
from core.net.connection import CLOSE_POLICY, CLOSE_REPLACED, CLOSE_SHUTDOWN, PeerConnection
from .errors import (BadRequest, CoveyError, KeyMismatch, NotAdmitted, PeerBanned, PeerUnreachable, ProxyUnreachable,
                     RateLimited, RefusedByPolicy, TimedOut, UnknownPeer, from_code)
from .contact_link import best_addresses, contact_link, looks_like_link, parse_contact_link
from .events import EventBus
from core.net.handshake import LocalEndpoint, random_psk
from .identity import Identity, ensure_identity, is_peer_id
from core.net.limits import LogLimiter, PeerLimits, limits_for
from .peers import MIN_PREFIX, Capability, PeerBook, Tier, keeps_connected, message_capability
from core.net.proxy import read_password
from .store import PeerRecord, Store
from core.net.routing import OutboundRoute
from core.net.transport import Transport

if TYPE_CHECKING:
    from core.net.discovery import Beacon, Discovery
    from .learning.service import LearningService
    from .service import Service

log = logging.getLogger("covey.node")

PSK_FILE = "network.key"
DB_FILE = "covey.db"
Handler = Callable[[str, dict], Any]   # (peer_id, body) -> reply body | None (sync or async)
BACKOFF_MIN, BACKOFF_MAX = 0.5, 60.0
BOOTSTRAP_TRIES, BOOTSTRAP_BACKOFF_MAX = 12, 30.0   # about 3 minutes of tries for a bootstrap peer
SWEEP_INTERVAL = 0.1  # how often unanswered requests are checked against their timeout
MAX_LAN_DIALS = 4     # LAN peers dialled at once for the session (a beacon flood dials no more)
STOP_TASKS_GRACE = 5.0  # s a stopping node waits for its cancelled tasks to end
USER_SOURCES = ("manual", "bootstrap")  # dials whose address the user gave
ROUTE_LABELS = {"off": "direct", "socks5": "SOCKS5", "tor": "Tor"}   # how outbound connections go
DISCOVERY_SETTINGS = ("discovery", "discovery_group", "discovery_port", "discovery_interval",
                      "discovery_interface")


class Node:
    """A Covey node: identity, peer book, transport, discovery and services."""

    def __init__(self, home: Path, identity: Identity, settings: Settings):
        self.home = Path(home)
        self.identity = identity
        self.settings = settings
        self.events = EventBus()
        self.store: Store | None = None
        self.peers: PeerBook | None = None
        self.transport: Transport | None = None
        self.discovery: Discovery | None = None
        self.started_at = 0.0
        self.connections: dict[str, PeerConnection] = {}
        self._handlers: dict[str, Handler] = {}
        self._async_handlers: set[str] = set()
        self._eager: set[str] = set()   # async handlers whose first step runs at dispatch
        self._capabilities: dict[str, Capability] = {}  # message type -> what its sender needs
        self._pending: dict[int, tuple[PeerConnection, asyncio.Future]] = {}  # request id -> (conn, reply)
        self._rejections = LogLimiter()              # rejection events/logs, per peer
        self._deadlines: dict[int, float] = {}       # request id -> loop time it expires
        self._sweeper: asyncio.Task | None = None
        self._keepers: dict[str, asyncio.Task] = {}
        self._lan_dials: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._unknown_budget: dict[str, list[float]] = {}
        self._stopping = False
        self._services: dict[str, "Service"] = {}
        self._psk: bytes | None = None                # the network key, read once (see psk())
        self._psk_read = False
        self._basis: tuple = ()                       # what the transport's endpoint was made of
        self.route = OutboundRoute(self)
        self.events.on(ev.PEER_BANNED, self._on_banned)
        for name in (ev.TIER_CHANGED, ev.PEER_BANNED, ev.PEER_UNBANNED, ev.PEER_ADDED, ev.PEER_REMOVED):
            self.events.on(name, self._refresh_limits)
        self.on_message("ping", lambda peer, body: {"pong": True})
        self.on_message("error", self._on_error_message)

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    def open(cls, home: Path, overrides: dict | None = None, passphrase: bytes | None = None,
             *, create_as: str | None = None) -> "Node":
        """Load settings, then the identity of ``home``. A bad setting is a BadRequest naming
        it (before anything is created); with no identity: NoIdentity, or with ``create_as``
        a new identity of that name (``core.identity.ensure_identity``)."""
        home = Path(home)
        settings = load_settings(home, overrides)
        if create_as is None:
            identity = Identity.load(home, passphrase)
        else:
            identity, _ = ensure_identity(home, create_as, passphrase)
        if settings.name and settings.name != identity.name:
            identity.name = settings.name
        return cls(home, identity, settings)

    def _endpoint_basis(self) -> tuple:
        """What a LocalEndpoint is made of (a change of any needs a new one)."""
        return (self.settings.mode, self.settings.min_mode, self.psk(), self.identity.name)

    def _endpoint(self) -> LocalEndpoint:
        # Over tor, inbound peers arrive from tor's 127.0.0.1: a listen port in the hello would
        # only be recorded as a loopback address they cannot dial (and leak the port).
        self._basis = self._endpoint_basis()
        return LocalEndpoint.create(self.identity, self.settings.mode, self.settings.min_mode, self.psk(),
                                    announce_port=not self.route.via_tor)

    async def start(self) -> None:
        """Open the database, listen, start discovery and reconnect to known peers."""
        self.started_at = time.time()
        self.store = store = Store(self.home / DB_FILE)
        self.peers = peers = PeerBook(store, self.events, ban_threshold=self.settings.ban_threshold,
                                      max_unkept=self.settings.max_unknown_peers,
                                      unkept_ttl=self.settings.unknown_peer_ttl,
                                      in_use=lambda peer_id: peer_id in self.connections)
        peers.expire()
        self.transport = transport = Transport(
            self._endpoint(), self.settings, admit=self._admit, on_connection=self._run_connection,
            health=self._health, proxy_password=read_password(self.home), limits=self._limits)
        try:
            await transport.start()
            if self.settings.discovery:
                await self._start_discovery()
        except BaseException:
            await transport.stop()
            store.close()
            raise
        from .service import build_services
        self._services = build_services(self)
        for service in self._services.values():
            store.ensure_schema(service.name, service.migrations)
            await service.start()
        await self.route.start()
        for rec in peers.list():
            if keeps_connected(rec):
                self._keep(rec.id)
        for address in self.settings.bootstrap:
            self._spawn(self._bootstrap(address))
        self.events.emit(ev.NODE_STARTED, id=self.identity.id, listen=self.listen_addresses())

    async def _start_discovery(self) -> None:
        from core.net.discovery import Discovery
        self.discovery = discovery = Discovery(
            self.identity, self._net.port, group=self.settings.discovery_group,
            port=self.settings.discovery_port, interval=self.settings.discovery_interval,
            interface=self.settings.discovery_interface, on_found=self._on_discovered,
            on_lost=self._on_lost)
        try:
            await discovery.start()
        except (OSError, CoveyError) as exc:
            log.warning("LAN discovery unavailable: %s", exc)
            self.discovery = None

    async def stop(self) -> None:
        """Close connections, stop services and flush the database (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        self.events.emit(ev.NODE_STOPPING)
        for task in list(self._keepers.values()) + list(self._tasks):
            task.cancel()
        if self.discovery is not None:
            await self.discovery.stop()
        for service in reversed(list(self._services.values())):
            try:
                await service.stop()
            except Exception:  # one failing service must not keep the others (or the db) open
                log.exception("service %s failed to stop", type(service).__name__)
        await asyncio.gather(*(c.close(CLOSE_SHUTDOWN, "node shutting down")
                               for c in list(self.connections.values())), return_exceptions=True)
        if self.transport is not None:
            await self.transport.stop()
        await self.route.stop()
        await self._await_cancelled_tasks()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PeerUnreachable("node shutting down"))
        if self.store is not None:
            self.store.close()

    async def _await_cancelled_tasks(self) -> None:
        """Wait for the tasks cancelled at stop, at most STOP_TASKS_GRACE s: a task that does not
        end (a library swallowing its cancellation) is named in the log, not waited on for good."""
        tasks = [*self._keepers.values(), *self._tasks]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_TASKS_GRACE)
        for task in pending:
            log.warning("a task did not end within %g s of the node's stop: %r", STOP_TASKS_GRACE, task)

    def _spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _start(self, coro) -> None:
        """Run ``coro``'s first step now; the rest, if it waits, as a task (see ``on_message``)."""
        try:
            started = _inbox.start(coro)
        except Exception as exc:  # as if its task had failed
            self._failed(exc)
            return
        if started is not None:
            self._spawn(_inbox.finish(*started))

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        log.warning("background task failed: %s", exc)
        self.events.emit(ev.ERROR, message=str(exc))

    # -- services ----------------------------------------------------------------
    @overload
    def service(self, name: Literal["learning"]) -> "LearningService": ...
    @overload
    def service(self, name: str) -> "Service": ...

    def service(self, name: str):
        """The running service ``name`` (BadRequest when this node runs without it)."""
        found = self._services.get(name)
        if found is None:
            raise BadRequest(f"this node runs without the {name} service")
        return found

    def has_service(self, name: str) -> bool:
        return name in self._services

    # -- what exists only while started --------------------------------------------
    # ``store``, ``peers`` and ``transport`` stay None until start(); the code that runs
    # only on a started node reads them through these (a clear error instead of None).
    @property
    def _book(self) -> PeerBook:
        if self.peers is None:
            raise RuntimeError("the node is not started (no peer book yet)")
        return self.peers

    @property
    def _net(self) -> Transport:
        if self.transport is None:
            raise RuntimeError("the node is not started (no transport yet)")
        return self.transport

    # -- info --------------------------------------------------------------------
    def listen_addresses(self) -> list[str]:
        host, _ = self.settings.listen_hostport
        port = self.transport.port if self.transport else 0
        if host not in ("0.0.0.0", "::", ""):
            return [f"{host}:{port}"]
        import psutil
        hosts = ["127.0.0.1"]
        for addrs in psutil.net_if_addrs().values():
            hosts += [a.address for a in addrs if a.family.name == "AF_INET" and a.address not in hosts]
        return [f"{h}:{port}" for h in hosts]

    def info(self) -> dict:
        listen, onion = self.listen_addresses(), self.route.onion()
        best = best_addresses(listen, onion)
        return {"id": self.identity.id, "name": self.identity.name,
                "fingerprint": self.identity.fingerprint, "listen": listen, "onion": onion,
                "link": contact_link(best[0], self.identity.id) if best else None,
                "mode": self.settings.mode, "min_mode": self.settings.min_mode,
                "network_key": self.psk() is not None, "pid": os.getpid(),
                "uptime": round(time.time() - self.started_at, 3)}

    def _health(self) -> dict:
        return {"id": self.identity.id, "peers": len(self.connections)}

    def peer_view(self, rec: PeerRecord, discovered: bool = False) -> dict:
        conn = self.connections.get(rec.id)
        seen = rec.last_seen
        return {"id": rec.id, "name": rec.name, "address": rec.address, "tier": rec.tier,
                "connected": conn is not None and not conn.closed,
                "mode": conn.mode if conn is not None else rec.mode,
                "reputation": round(rec.reputation, 4), "banned": rec.banned,
                "last_seen": _iso(seen), "pinned": rec.pinned, "source": rec.source,
                "kept": rec.kept, "discovered": discovered, "fingerprint": _fingerprint(rec.id),
                "route": self.route_of(conn) if conn is not None and not conn.closed else None}

    def route_of(self, conn: PeerConnection) -> str:
        """How a live connection travels: ``direct``, ``SOCKS5`` or ``Tor`` when we dialled it
        (as the proxy setting makes them: a proxy change drops them), ``inbound`` when it dialled us."""
        return ROUTE_LABELS.get(self.settings.proxy_mode, self.settings.proxy_mode) if conn.initiator else "inbound"

    def list_peers(self) -> list[dict]:
        """The peer book, then the nodes heard on the LAN that are not in it (``discovered``:
        held in memory by discovery, bounded and expiring, until the user adds or trusts one)."""
        views = [self.peer_view(r) for r in self._book.list()]
        in_book = {v["id"] for v in views}
        for beacon in self.discovery.peers() if self.discovery is not None else []:
            if beacon.id not in in_book and beacon.id != self.identity.id:
                views.append(self.peer_view(_discovered_record(beacon), discovered=True))
        return views

    # -- messaging API for services ---------------------------------------------
    def on_message(self, msg_type: str, handler: Handler, capability: Capability | str | None = None,
                   *, eager: bool = False) -> None:
        """Register the handler of one message type (sync handlers run inline).

        ``capability``: what a peer needs to send this type (core.peers.MESSAGE_CAPABILITIES
        decides for the protocol's own types; default CONNECT: any peer that is not banned).
        The node checks it before the handler runs.

        An async handler runs as a task of its own; ``eager``: its first step runs at once where
        the message is dispatched, and only what is left after its first real wait becomes a task
        (one that answers without waiting costs no task and no loop turn). Only for handlers that
        need no current task (``asyncio.timeout``) before their first wait."""
        self._capabilities[msg_type] = message_capability(msg_type, capability)
        self._handlers[msg_type] = handler
        if inspect.iscoroutinefunction(handler):
            self._async_handlers.add(msg_type)
        else:
            self._async_handlers.discard(msg_type)
        if eager and msg_type in self._async_handlers:
            self._eager.add(msg_type)
        else:
            self._eager.discard(msg_type)

    async def send(self, peer_id: str, msg_type: str, body: dict) -> None:
        """Send one message to a connected peer."""
        await self._connection(peer_id).send(wire.Message(msg_type, body))

    async def request(self, peer_id: str, msg_type: str, body: dict, timeout: float = 30.0) -> dict:
        """Send a message and wait for the peer's reply body (its errors are raised typed)."""
        conn = self._connection(peer_id)
        msg_id = wire.next_id()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[msg_id] = (conn, future)
        self._deadlines[msg_id] = loop.time() + timeout
        if self._sweeper is None:
            self._sweeper = self._spawn(self._expire_requests())
        try:
            await conn.send(wire.Message(msg_type, body, id=msg_id), urgent=True)
            reply = await future
        except asyncio.TimeoutError:
            raise TimedOut(f"{msg_type} to {peer_id[:12]} got no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(msg_id, None)
            self._deadlines.pop(msg_id, None)
        if reply.type == "error":
            raise from_code(str(reply.body.get("code")), str(reply.body.get("message", "error")))
        return reply.body

    async def _expire_requests(self) -> None:
        """Time out unanswered requests. One coarse sweep (every 0.1 s) is cheaper on the
        request hot path than a timer per request (or wait_for)."""
        loop = asyncio.get_running_loop()
        try:
            while self._deadlines:
                await asyncio.sleep(SWEEP_INTERVAL)
                now = loop.time()
                for msg_id, when in list(self._deadlines.items()):
                    entry = self._pending.get(msg_id)
                    if when <= now and entry is not None and not entry[1].done():
                        entry[1].set_exception(asyncio.TimeoutError())
        finally:
            self._sweeper = None

    def connected_peers(self) -> list[str]:
        return [pid for pid, c in self.connections.items() if not c.closed]

    def _connection(self, peer_id: str) -> PeerConnection:
        conn = self.connections.get(peer_id)
        if conn is None or conn.closed:
            raise PeerUnreachable(f"peer {peer_id[:12]} is not connected")
        return conn

    def _dispatch(self, conn: PeerConnection, msg: wire.Message):
        """Route one inbound message: a reply to its request (only on the connection the
        request went out on), else policy first, then the handler."""
        if msg.reply_to is not None:
            entry = self._pending.get(msg.reply_to)
            if entry is not None and entry[0] is conn:
                del self._pending[msg.reply_to]
                conn.refund()  # an answer we asked for does not count against the peer's rate
                if not entry[1].done():
                    entry[1].set_result(msg)
            return None  # a reply nobody here waits for on this connection is dropped, never answered
        handler = self._handlers.get(msg.type)
        if handler is None:
            return self._reply_error(conn, msg, BadRequest(f"unknown message type {msg.type!r}"),
                                     code="unknown_type")
        if self._capabilities[msg.type] not in conn.limits.allowed:
            return self._reply_error(conn, msg, self._refusal(conn.peer_id, self._capabilities[msg.type]))
        if msg.type in self._async_handlers:
            gate = conn.gate
            if gate.used >= gate.size:
                return self._spawn_when_free(conn, msg, handler)  # the reader waits: backpressure
            gate.used += 1
            if msg.type in self._eager:
                self._start(self._run_handler(conn, msg, handler))
            else:
                self._spawn(self._run_handler(conn, msg, handler))
            return None
        try:
            result = handler(conn.peer_id, msg.body)
        except CoveyError as exc:
            return self._reply_error(conn, msg, exc)
        if result is not None:
            return conn.send(wire.Message(msg.type + ".reply", result, reply_to=msg.id), urgent=True)
        return None

    def _refusal(self, peer_id: str, capability: Capability) -> CoveyError:
        """The typed error that explains why the peer may not do ``capability``."""
        try:
            self._book.check(peer_id, capability)
        except CoveyError as exc:
            return exc
        return RefusedByPolicy(f"peer {peer_id[:12]} may not use this message type")  # tier changed meanwhile

    async def _spawn_when_free(self, conn: PeerConnection, msg: wire.Message, handler) -> None:
        await conn.gate.wait()
        conn.gate.used += 1
        self._spawn(self._run_handler(conn, msg, handler))

    async def _run_handler(self, conn: PeerConnection, msg: wire.Message, handler) -> None:
        try:
            result = await handler(conn.peer_id, msg.body)
        except CoveyError as exc:
            await self._reply_error(conn, msg, exc)
            return
        finally:
            conn.gate.leave()
        if result is not None and not conn.closed:
            await conn.send(wire.Message(msg.type + ".reply", result, reply_to=msg.id), urgent=True)

    async def _reply_error(self, conn: PeerConnection, msg: wire.Message, exc: CoveyError,
                           code: str | None = None) -> None:
        code = code or exc.code
        # rate limited per peer: a flood of bad messages is no log flood (the admission step
        # reported what it did not admit already)
        suppressed = None if isinstance(exc, NotAdmitted) else self._rejections.allow(conn.peer_id)
        if suppressed is not None:
            self.events.emit(ev.MESSAGE_REJECTED, peer=conn.peer_id, type=msg.type, code=code,
                             reason=str(exc), suppressed=suppressed)
        if not conn.closed:
            await conn.send(wire.Message("error", {"code": code, "message": str(exc)}, reply_to=msg.id))

    def _on_error_message(self, peer_id: str, body: dict) -> None:
        """An error the peer reports about something we sent: logged (rate limited), never answered."""
        suppressed = self._rejections.allow(peer_id)
        if suppressed is None:
            return
        log.info("peer %s reported an error: %s%s", peer_id[:12], str(body.get("message"))[:200],
                 f" ({suppressed} more not logged)" if suppressed else "")
        self.events.emit(ev.MESSAGE_REJECTED, peer=peer_id, code=str(body.get("code"))[:40],
                         reason=str(body.get("message"))[:200], direction="outbound",
                         suppressed=suppressed)

    def _limits(self, peer_id: str) -> PeerLimits:
        """The flow limits of a peer, from its tier (UNKNOWN when not in the book). A stranger
        (UNKNOWN and never added or touched by the user) gets the tight limits."""
        peers = self.peers
        rec = peers.get(peer_id) if peers is not None else None
        tier = peers.tier_of(peer_id) if peers is not None and rec is not None else Tier.UNKNOWN
        return limits_for(self.settings, tier, rec is not None and rec.banned,
                          stranger=tier is Tier.UNKNOWN and not (rec is not None and rec.kept))

    def _refresh_limits(self, event) -> None:
        """A peer's tier or standing changed: its live connection gets the new limits."""
        self._apply_limits(event.data.get("peer") or "")

    def _apply_limits(self, peer_id: str) -> None:
        conn = self.connections.get(peer_id)
        if conn is not None and self.peers is not None:
            conn.set_limits(self._limits(peer_id))

    # -- connections ---------------------------------------------------------------
    def _admit(self, peer_id: str, host: str) -> None:
        """Policy at the door: banned peers never, unknown ones rate-limited per address."""
        if peer_id == self.identity.id:
            raise RefusedByPolicy("that is this node's own identity")
        rec = self._book.get(peer_id)
        if rec is not None and rec.banned:
            raise PeerBanned("this node has banned your identity")
        if rec is None or rec.tier == Tier.UNKNOWN.value:
            held = sum(1 for c in self.connections.values() if c.limits.unknown and not c.closed)
            if held >= self.settings.max_unknown_connections:
                raise RateLimited("this node holds as many connections with unknown peers as it "
                                  "allows; retry later or ask its owner to add you")
            now = time.monotonic()
            recent = [t for t in self._unknown_budget.get(host, []) if now - t < 60.0]
            if len(recent) >= self.settings.unknown_per_minute:
                raise RateLimited("too many connections from unknown peers at this address; retry in a minute")
            recent.append(now)
            self._unknown_budget[host] = recent
            if len(self._unknown_budget) > 4096:  # bounded: forget addresses quiet for a minute
                self._unknown_budget = {h: ts for h, ts in self._unknown_budget.items()
                                        if ts and now - ts[-1] < 60.0}

    async def _run_connection(self, conn: PeerConnection, address: str | None = None,
                              source: str | None = None) -> None:
        """Register an authenticated connection and read from it until it closes.

        ``address`` is what we dialled (None for inbound); ``source`` why we dialled it
        (``manual``/``bootstrap``: an address the user gave; ``lan``: a beacon's).
        """
        peer_id = conn.peer_id
        existing = self.connections.get(peer_id)
        if existing is not None and not existing.closed:
            # Both sides dialled at once: keep the one the smaller id initiated.
            keep_new = conn.initiator == (self.identity.id < peer_id)
            loser = existing if keep_new else conn
            await loser.close(CLOSE_REPLACED, "duplicate connection")
            if not keep_new:
                return
        known = self._book.get(peer_id)
        if source is None:
            source = "manual" if conn.initiator else "inbound"
        # The name a peer announces fills an empty one; it never overrides the user's choice.
        rec = self._book.add_or_update(peer_id, name=None if known and known.name else conn.peer_name or None,
                                       address=self._address_to_record(known, conn, address, source),
                                       source=None if known else source, mode=conn.mode,
                                       kept=True if source in USER_SOURCES else None)
        self._book.seen(peer_id, mode=conn.mode)
        self.connections[peer_id] = conn
        conn.on_message = self._dispatch
        self.events.emit(ev.PEER_CONNECTED, peer=peer_id, name=rec.name, mode=conn.mode,
                         address=rec.address, initiator=conn.initiator, route=self.route_of(conn))
        log.info("connected to %s (%s) in %s mode", rec.name or peer_id[:12], rec.address, conn.mode)
        if keeps_connected(rec) and peer_id not in self._keepers and not self._stopping:
            self._keep(peer_id)
        try:
            await conn.run()
        finally:
            for pending_conn, fut in list(self._pending.values()):   # they would wait for their deadline
                if pending_conn is conn and not fut.done():
                    fut.set_exception(PeerUnreachable(f"peer {peer_id[:12]} disconnected before it answered"))
            if self.connections.get(peer_id) is conn:
                del self.connections[peer_id]
                if self._book.get(peer_id) is not None and self.store is not None and not self._stopping:
                    self._book.seen(peer_id)
                self.events.emit(ev.PEER_DISCONNECTED, peer=peer_id, reason=conn.close_reason)
                log.info("disconnected from %s: %s", peer_id[:12], conn.close_reason)

    def _address_to_record(self, known: PeerRecord | None, conn: PeerConnection,
                           dialled: str | None, source: str) -> str | None:
        """The address to store for a new connection, or None to leave the stored one.

        An address the user gave wins. A LAN beacon or an inbound connection never moves a
        peer the user added, pinned or trusted (over tor an inbound peer seems to come from
        127.0.0.1, which would replace its .onion address with one nobody can dial).
        """
        if dialled and source in USER_SOURCES:
            return dialled
        if known is not None and known.kept and known.address:
            return None
        if dialled:
            return dialled
        if conn.listen_port and not self.route.via_tor:
            return _join(conn.remote, conn.listen_port)
        return None

    async def dial(self, address: str, expected_id: str | None = None,
                   source: str = "manual") -> PeerConnection:
        """Connect to ``address``, authenticate, and register the connection."""
        self.route.check()
        conn = await self._net.dial(address, expected_id)
        task = self._spawn(self._run_connection(conn, address, source))
        for _ in range(50):  # registration happens on the first loop turn of the task
            if self.connections.get(conn.peer_id) is conn or task.done() or conn.closed:
                break
            await asyncio.sleep(0)
        return conn

    def _keep(self, peer_id: str) -> None:
        """Keep a connection to this peer: reconnect with exponential backoff."""
        if peer_id not in self._keepers and not self._stopping:
            self._keepers[peer_id] = asyncio.ensure_future(self._keeper(peer_id))

    async def _keeper(self, peer_id: str) -> None:
        delay = BACKOFF_MIN
        try:
            while not self._stopping:
                rec = self._book.get(peer_id)
                if rec is None or not keeps_connected(rec) or rec.address is None:
                    return  # (keeps_connected already implies an address)
                conn = self.connections.get(peer_id)
                if conn is not None and not conn.closed:
                    await conn.wait_closed()
                    delay = BACKOFF_MIN
                    await asyncio.sleep(random.uniform(0.05, 0.3))
                    continue
                try:
                    conn = await self.dial(rec.address, peer_id)
                    delay = BACKOFF_MIN
                    continue
                except CoveyError as exc:
                    level = logging.WARNING if delay >= 8 else logging.DEBUG
                    log.log(level, "reconnect to %s failed: %s", rec.name or peer_id[:12], exc)
                    if getattr(exc, "code", "") in ("key_mismatch", "mode_mismatch", "network_key_mismatch"):
                        self.events.emit(ev.ERROR, peer=peer_id, code=exc.code, message=str(exc))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self._keepers.pop(peer_id, None)

    async def _bootstrap(self, address: str) -> None:
        """Add a configured bootstrap peer. Nodes may start in any order (k8s), so one not up yet is
        retried with capped exponential backoff and jitter, BOOTSTRAP_TRIES times at most."""
        delay = BACKOFF_MIN
        for attempt in range(1, BOOTSTRAP_TRIES + 1):
            try:
                await self.add_peer(address, source="bootstrap")
                return
            except (PeerUnreachable, TimedOut, RateLimited, ProxyUnreachable) as exc:
                if attempt == BOOTSTRAP_TRIES or self._stopping:
                    log.warning("bootstrap peer %s: %s; gave up after %d tries", address, exc, attempt)
                    return
                log.info("bootstrap peer %s: %s; try %d in %.1f s", address, exc, attempt + 1, delay)
            except CoveyError as exc:   # not a matter of time (a bad address, another key or mode)
                log.warning("bootstrap peer %s: %s", address, exc)
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BOOTSTRAP_BACKOFF_MAX)

    def _on_discovered(self, beacon: Beacon) -> None:
        """A node heard on the LAN. It stays in discovery's memory (bounded, expiring), out of
        the peer book, until the user adds or trusts it; it is dialled once for this session
        (a stranger, UNKNOWN), with no keeper and without moving any stored address."""
        if beacon.id == self.identity.id or self._stopping:
            return
        address = _join(beacon.host, beacon.port)
        self.events.emit(ev.PEER_DISCOVERED, peer=beacon.id, name=beacon.name, address=address)
        rec = self._book.get(beacon.id)
        conn = self.connections.get(beacon.id)
        if (rec is not None and rec.banned) or (conn is not None and not conn.closed):
            return
        if beacon.id in self._lan_dials or len(self._lan_dials) >= MAX_LAN_DIALS:
            return
        self._lan_dials[beacon.id] = self._spawn(self._lan_dial(beacon.id, address))

    async def _lan_dial(self, peer_id: str, address: str) -> None:
        try:
            await self.dial(address, peer_id, source="lan")
        except CoveyError as exc:
            log.debug("LAN peer %s at %s not reached: %s", peer_id[:12], address, exc)
        finally:
            self._lan_dials.pop(peer_id, None)

    def _on_lost(self, peer_id: str) -> None:
        self.events.emit(ev.PEER_LOST, peer=peer_id)

    # -- user commands -------------------------------------------------------------
    async def add_peer(self, address: str, key: str | None = None, name: str | None = None,
                       *, source: str = "manual") -> dict:
        """Add a peer by address. With ``key`` the peer is dialled first: if it answers with
        another key, KeyMismatch is raised and nothing is saved; if it answers with that key,
        or cannot be reached now, the key is pinned. Without ``key``, the first key seen is
        pinned (the peer stays UNKNOWN). Either way the node keeps reconnecting to it
        (``source`` is ``bootstrap`` for configured addresses). Cancelling saves nothing.
        ``address`` may be a contact link (``covey://HOST:PORT#ID``): its id is the key."""
        if looks_like_link(address):
            link = parse_contact_link(address)
            if key is not None and key.strip().lower() != link.peer_id:
                raise BadRequest("the key given is not the id in the contact link: give one or the other")
            address, key = link.address, link.peer_id
        if key is not None:
            key = key.strip().lower()
            if not is_peer_id(key):
                raise BadRequest("the key must be the peer's ID: 64 hex digits (its owner reads it on "
                                 "their node; a contact link carries it)")
            if key == self.identity.id:
                raise BadRequest("that is this node's own key")
            if key not in self.connections:
                try:
                    await self.dial(address, key, source=source)
                except (KeyMismatch, BadRequest):
                    raise   # the peer is not who the user named, or the address is not one
                except CoveyError as exc:   # not reachable now: pinned, retried in the background
                    log.info("peer %s added; not reachable yet (%s), retrying in the background",
                             address, exc)
            self._book.add_or_update(key, name=name, address=address, source=source, pinned=True,
                                     kept=True)
            self._keep(key)
            return self.peer_view(self._book.resolve(key))  # UnknownPeer if removed meanwhile
        conn = await self.dial(address, source=source)
        rec = self._book.add_or_update(conn.peer_id, name=name, address=address, pinned=True, kept=True)
        self._apply_limits(rec.id)  # added by the user: no longer a stranger
        if keeps_connected(rec):
            self._keep(rec.id)
        return self.peer_view(rec)

    def resolve(self, ref: str) -> PeerRecord:
        """A peer of the book, or a node heard on the LAN (which the user's action adds to the book)."""
        try:
            return self._book.resolve(ref)
        except UnknownPeer:
            beacon = self._discovered(ref)
            if beacon is None:
                raise
            return self._book.add_or_update(beacon.id, name=beacon.name, source="lan",
                                            address=_join(beacon.host, beacon.port))

    def peer_info(self, peer_id: str) -> dict:
        """The view of one peer of the book or one node heard on the LAN, by exact id; reading
        never adds anything to the book (UnknownPeer when it is neither)."""
        rec = self._book.get(peer_id)
        if rec is not None:
            return self.peer_view(rec)
        for beacon in self.discovery.peers() if self.discovery is not None else []:
            if beacon.id == peer_id:
                return self.peer_view(_discovered_record(beacon), discovered=True)
        raise UnknownPeer(f"no peer {peer_id[:16]} in the peer book or on the LAN")

    def _discovered(self, ref: str) -> Beacon | None:
        """The one LAN node (not in the book) named by ``ref`` (id, id prefix, name), or None."""
        text = (ref or "").strip()
        lowered = text.lower()
        by_prefix = len(lowered) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in lowered)
        found = [b for b in (self.discovery.peers() if self.discovery is not None else [])
                 if b.name == text or (by_prefix and b.id.startswith(lowered))]
        return found[0] if len(found) == 1 else None

    def trust(self, ref: str, tier: str) -> dict:
        rec = self._book.set_tier(self.resolve(ref).id, tier)
        if keeps_connected(rec):
            self._keep(rec.id)   # trusted: the node now keeps it connected
        return self.peer_view(rec)

    async def ban(self, ref: str) -> dict:
        rec = self._book.ban(self.resolve(ref).id)
        await self._drop(rec.id, "banned")
        return self.peer_view(rec)

    def unban(self, ref: str) -> dict:
        rec = self._book.unban(self.resolve(ref).id)
        if keeps_connected(rec):
            self._keep(rec.id)
        return self.peer_view(rec)

    async def remove_peer(self, ref: str) -> dict:
        rec = self.resolve(ref)
        self._book.remove(rec.id)
        await self._drop(rec.id, "removed from the peer book")
        return {"removed": rec.id}

    def _on_banned(self, event) -> None:
        """Any ban (the user's, or automatic at the reputation threshold) ends the connection."""
        peer_id = event.data.get("peer")
        if peer_id and not self._stopping:
            self._spawn(self._drop(peer_id, "banned"))

    async def _drop(self, peer_id: str, reason: str) -> None:
        keeper = self._keepers.pop(peer_id, None)
        if keeper is not None:
            keeper.cancel()
        conn = self.connections.get(peer_id)
        if conn is not None:
            await conn.close(CLOSE_POLICY, reason)

    # -- settings ---------------------------------------------------------------------
    # One path for every user action; the GUI, the CLI and the control API call these.
    # Each validates (all of Settings.validate, plus its own argument rules), persists
    # (config.json via the crash-safe writer) and reconfigures only what the change touches.
    async def update_settings(self, **changes: Any) -> Settings:
        """Apply a change of settings: validate it, persist it, reconfigure what it touches."""
        return await self._change(changes)

    async def _change(self, changes: dict[str, Any], *, persist: bool = True,
                      proxy_password: str | None = None, announce: tuple[str, ...] = ()) -> Settings:
        """Validate, persist (unless ``persist`` is False: an owned tor's SOCKS port differs
        from run to run), then give the transport what changed, and only that: a new
        endpoint (fresh Noise keys) when the mode, the network key or the name changed; the
        same keys when only whether to announce the listen port did (tor on or off). The
        transport rebuilds its outbound session only when the proxy or its password changed."""
        old = self.settings
        new = with_changes(old, **changes)
        if ({"mode", "min_mode"} & set(changes) and "symmetric" in (new.mode, new.min_mode)
                and self.psk() is None):
            raise BadRequest("symmetric mode needs a network key: `covey crypto psk generate` "
                             "or `covey crypto psk import FILE` first")
        if persist and changes:
            save_settings(self.home, {k: getattr(new, k) for k in changes})
        self.settings = new
        if new.name and new.name != old.name:
            self.identity.name = new.name
        if self.transport is not None:   # not started: start() builds everything from the settings
            local = self.transport.local
            if self._endpoint_basis() != self._basis:
                local = self._endpoint()
            elif local.announce_port != (not self.route.via_tor):
                local = replace(local, announce_port=not self.route.via_tor)
            self.transport.reconfigure(new, local=local, proxy_password=proxy_password)
            if any(getattr(old, k) != getattr(new, k) for k in DISCOVERY_SETTINGS):
                await self._restart_discovery()
        self.events.emit(ev.SETTINGS_CHANGED, changes=sorted(changes) + list(announce))
        # Connections negotiated under the old policy must renegotiate.
        weaker = [c for c in self.connections.values()
                  if MODE_RANK[c.mode] < MODE_RANK[new.min_mode]]
        for conn in weaker:
            await conn.close(CLOSE_POLICY, f"this node now requires at least {new.min_mode}")
        return new

    async def _restart_discovery(self) -> None:
        if self.discovery is not None:
            await self.discovery.stop()
            self.discovery = None
        if self.settings.discovery and not self._stopping:
            await self._start_discovery()

    async def set_mode(self, mode: str | None, min_mode: str | None = None) -> dict:
        """Set the preferred encryption mode and the weakest accepted (default: the same)."""
        if mode is None:
            raise BadRequest("give MODE together with --min")
        await self._change({"mode": mode, "min_mode": min_mode or mode})
        return self.crypto_view()

    def crypto_view(self) -> dict:
        key = self.psk()
        return {"mode": self.settings.mode, "min": self.settings.min_mode,
                "network_key": key is not None, "offered": offered_modes(self.settings.min_mode, key is not None)}

    def psk(self) -> bytes | None:
        """The network key: read from network.key once, then kept in memory (psk_set replaces it)."""
        if not self._psk_read:
            self._psk = read_network_key(self.home / PSK_FILE)
            self._psk_read = True
        return self._psk

    async def psk_set(self, key: bytes | str | None = None) -> dict:
        """Set the network key: random when None, or given as bytes or as hex text."""
        if key is None:
            key = random_psk()
        key = parse_network_key(key) if isinstance(key, str) else check_network_key(key)
        write_secret(self.home / PSK_FILE, key.hex().encode() + b"\n")
        self._psk, self._psk_read = key, True
        await self._change({}, persist=False, announce=("network_key",))
        return self.crypto_view()

    def sessions(self) -> list[dict]:
        """The live connections: peer id, name, mode, route (outbound: direct, SOCKS5 or Tor
        as the proxy setting makes them, since a proxy change drops them; or inbound) and
        since (epoch seconds)."""
        book = self._book
        views = []
        for peer_id, conn in list(self.connections.items()):
            if conn.closed:
                continue
            rec = book.get(peer_id)
            views.append({"peer": peer_id, "name": (rec.name if rec else "") or conn.peer_name,
                          "mode": conn.mode, "route": self.route_of(conn), "since": conn.opened_at})
        return views

    async def set_passphrase(self, old: str | bytes | None, new: str | bytes) -> dict:
        """Protect the identity key file with the passphrase ``new``; when it is protected
        already, ``old`` must unlock it. Argon2id runs in a thread, off the loop."""
        def raw(secret: str | bytes | None) -> bytes | None:
            return secret.encode() if isinstance(secret, str) else secret
        await asyncio.to_thread(self.identity.change_passphrase, self.home, raw(old), raw(new) or b"")
        self.events.emit(ev.SETTINGS_CHANGED, changes=["passphrase"])
        return {"protected": self.identity.protected}

    async def psk_import(self, path: str | Path) -> dict:
        """Set the network key from a file holding its 64 hex digits (read off the loop)."""
        key = await asyncio.to_thread(read_key_file, Path(path))
        return await self.psk_set(key)

    async def psk_export(self, path: str | Path) -> dict:
        """Write the network key to ``path`` (mode 0600), for a peer to import."""
        key = self.psk()
        if key is None:
            raise BadRequest("there is no network key to export: generate or import one first")
        await asyncio.to_thread(write_secret, Path(path), key.hex().encode() + b"\n")
        return {"exported": str(path)}

    async def set_name(self, name: str) -> dict:
        """Rename this node: peers see the new name at their next handshake and in beacons."""
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("a node name cannot be empty")
        await self._change({"name": name.strip()})
        return self.info()

    async def set_discovery(self, enabled: bool | None = None, group: str | None = None,
                            port: int | None = None, interval: float | None = None,
                            interface: str | None = None) -> dict:
        """Turn LAN discovery on or off, or change its group, port, interval or interface."""
        given = {"discovery": enabled, "discovery_group": group, "discovery_port": port,
                 "discovery_interval": interval, "discovery_interface": interface}
        await self._change({k: v for k, v in given.items() if v is not None})
        return self.discovery_view()

    def discovery_view(self) -> dict:
        s = self.settings
        return {"enabled": s.discovery, "group": s.discovery_group, "port": s.discovery_port,
                "interval": s.discovery_interval, "interface": s.discovery_interface,
                "running": self.discovery is not None}

    # -- outbound route (direct, SOCKS5, tor): core.net.routing --------------------------
    @property
    def tor(self):
        return self.route.tor

    async def set_proxy(self, mode: str, host: str = "", port: int = 0, user: str = "",
                        password: str | None = None) -> dict:
        """Off, a SOCKS5 proxy, or a tor SOCKS port used as a plain proxy (password None: keep)."""
        return await self.route.set_proxy(mode, host, port, user, password)

    async def use_tor(self, control: str | None = None, config: str | None = None) -> dict:
        return await self.route.use_tor(control, config)

    async def choose_proxy(self, *, socks5: str | None = None, tor: bool = False,
                           tor_control: str | None = None, tor_config: str | None = None,
                           user: str | None = None, password: str | None = None) -> dict:
        """The user's proxy choice as a form or `covey proxy set` gives it (see
        :meth:`core.net.routing.OutboundRoute.choose` for the rules)."""
        return await self.route.choose(socks5=socks5, tor=tor, tor_control=tor_control,
                                       tor_config=tor_config, user=user, password=password)

    def proxy_view(self) -> dict:
        return self.route.view()


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _discovered_record(beacon: Beacon) -> PeerRecord:
    """How a LAN node that is not in the book is shown: a stranger heard at its beacon's address."""
    return PeerRecord(id=beacon.id, name=beacon.name, address=_join(beacon.host, beacon.port),
                      source="lan", last_seen=beacon.ts)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _fingerprint(peer_id: str) -> str:
    from .identity import fingerprint_of
    return fingerprint_of(peer_id)
