"""The aiohttp server (``/covey/v1`` WebSocket + ``GET /health``) and the dialer.

Services may serve plain HTTP on the same port (:meth:`Transport.add_http_route`, e.g.
``POST /tasks``) and add checks to ``/health`` (:meth:`Transport.add_health_check`), which
answers in the ``application/health+json`` shape (status pass/warn/fail, version, checks).

Both run the handshake of :mod:`core.handshake` and hand an authenticated
:class:`~core.net.connection.PeerConnection` to the node. Floods are bounded
before any expensive work:

- a cap on inbound sockets (``max_connections``: over it a socket is closed
  at once) and a short deadline for HTTP request headers (aiohttp's
  ``keepalive_timeout``, which also runs before the first request);
- handshake slots per pool: direct peers (``max_handshakes`` overall, 16 per
  source address) and, when tor is on, inbound from 127.0.0.1 (the onion
  service) in its own pool (``tor_handshakes``). When a pool is full, the
  oldest handshake that has stalled for a second is evicted (one that never
  sent its hello first), so held sockets cannot lock honest peers out;
- a deadline for the hello (``hello_timeout``) and for the whole handshake.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from core.net import inbox, wire
from core.config import Settings, parse_hostport
from core.net.connection import CLOSE_POLICY, CLOSE_PROTOCOL, PeerConnection
from core.errors import (CoveyError, HandshakeFailed, KeyMismatch, MalformedMessage, PeerUnreachable,
                     ProxyUnreachable, RateLimited, TimedOut, from_code)
from core.net.handshake import LocalEndpoint, NoiseHandshake, choose, make_hello, parse_choice, parse_hello, refusal
from core.net.limits import Budget, LogLimiter, PeerLimits, limit_accept_errors, limits_for, raise_fd_limit
from core.peers import Tier

log = logging.getLogger("covey.transport")

HANDSHAKE_FRAME_MAX = 4096
PER_ADDRESS_HANDSHAKES = 16
EVICT_AFTER = 1.0       # seconds a handshake must have stalled before a newcomer may evict it
CLOSE_HANDSHAKE = 4001
_TOR_SOURCES = ("127.0.0.1", "::1")  # where the onion service (a local tor) connects from

Admit = Callable[[str, str], None]                       # (peer_id, remote host) -> raises to refuse
OnConnection = Callable[[PeerConnection], Awaitable[None]]
Limits = Callable[[str], PeerLimits]                     # peer_id -> its limits
HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HealthCheck = Callable[[], dict]   # -> one health+json check: {"status": "pass|warn|fail", ...}
HEALTH_TYPE = "application/health+json"
_HEALTH_RANK = {"pass": 0, "warn": 1, "fail": 2}


class _Slot:
    """One inbound handshake in flight."""
    __slots__ = ("pool", "host", "started", "transport", "hello", "evicted")

    def __init__(self, pool: str, host: str, started: float, transport):
        self.pool, self.host, self.started, self.transport = pool, host, started, transport
        self.hello = False
        self.evicted = False


class _Refuse(asyncio.Protocol):
    """Closes a socket accepted over the connection cap."""

    def connection_made(self, transport) -> None:
        transport.close()


class Transport:
    """Serves inbound peers and dials outbound ones."""

    def __init__(self, local: LocalEndpoint, settings: Settings, *, admit: Admit,
                 on_connection: OnConnection, health: Callable[[], dict], proxy_password: str = "",
                 limits: Limits | None = None):
        self.local = local
        self.proxy_password = proxy_password
        self.settings = settings
        self.admit = admit
        self.on_connection = on_connection
        self.health = health
        self.port = 0
        self.rejected_handshakes = 0
        self.evicted_handshakes = 0
        self.refused_connections = 0         # sockets closed over max_connections
        self.limits = limits or (lambda peer_id: limits_for(self.settings, Tier.UNKNOWN))
        self.budget = Budget(settings.partial_budget)  # unfinished messages, all connections
        self.unknown_budget = Budget(settings.unknown_partial_budget)  # UNKNOWN peers' share
        self._handshakes: list[_Slot] = []   # inbound handshakes in flight, oldest first
        self._refusals = LogLimiter()        # log lines about refused handshakes, per address
        self._listener: asyncio.AbstractServer | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._server_tasks: set[asyncio.Task] = set()
        self._http_routes: dict[tuple[str, str], HttpHandler] = {}   # (METHOD, path) -> handler
        self._health_checks: dict[str, HealthCheck] = {}

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> int:
        """Listen on the configured address; returns the bound port."""
        app = web.Application(client_max_size=1024)
        app.router.add_get("/health", self._health)
        app.router.add_get(wire.WS_PATH, self._accept)
        app.router.add_route("*", "/{path:.*}", self._route)   # what services add (add_http_route)
        raise_fd_limit()
        limit_accept_errors()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                                     keepalive_timeout=self.settings.http_idle_timeout)
        await self._runner.setup()
        host, port = self.settings.listen_hostport
        try:
            # Our own listener (not web.TCPSite) so that accepted sockets pass the cap first.
            self._listener = await asyncio.get_running_loop().create_server(
                self._protocol, host or None, port, backlog=512, reuse_address=True)
        except OSError as exc:
            await self._runner.cleanup()
            raise PeerUnreachable(f"cannot listen on {host}:{port}: {exc.strerror}; "
                                  "choose another with --listen HOST:PORT") from None
        self.port = self._listener.sockets[0].getsockname()[1]
        self.local.listen_port = self.port
        return self.port

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server if self._runner is not None else None
        if server is None or len(server.connections) >= self.settings.max_connections:
            self.refused_connections += 1
            return _Refuse()
        return server()

    @property
    def _in_flight(self) -> int:
        return len(self._handshakes)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reconfigure(self, settings: Settings, *, local: LocalEndpoint | None = None,
                    proxy_password: str | None = None) -> None:
        """Apply new settings to future connections, touching only what changed: the
        endpoint when a new one is given (mode, network key, name), the outbound HTTP
        session only when the proxy or its password changed (None: the password stays)."""
        proxy_changed = (_proxy_of(settings) != _proxy_of(self.settings)
                         or proxy_password is not None and proxy_password != self.proxy_password)
        self.settings = settings
        if local is not None:
            local.listen_port = self.port
            self.local = local
        if proxy_password is not None:
            self.proxy_password = proxy_password
        self.budget.limit = settings.partial_budget
        self.unknown_budget.limit = settings.unknown_partial_budget
        if proxy_changed and self._session is not None:
            old, self._session = self._session, None
            asyncio.get_running_loop().create_task(old.close())

    # -- plain HTTP routes of services and /health ----------------------------------
    def add_http_route(self, method: str, path: str, handler: HttpHandler) -> None:
        """Serve ``method path`` on the node's port with ``handler`` (a service's route; it
        bounds and reads the body itself: the app's own body limit is 1 KiB)."""
        key = (method.upper(), path)
        if key in self._http_routes or path in ("/health", wire.WS_PATH):
            raise ValueError(f"{method} {path} is already served")
        self._http_routes[key] = handler

    def remove_http_route(self, method: str, path: str) -> None:
        self._http_routes.pop((method.upper(), path), None)

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Report ``check()`` under ``checks[name]`` of /health (name as "component:measurement")."""
        self._health_checks[name] = check

    def remove_health_check(self, name: str) -> None:
        self._health_checks.pop(name, None)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        handler = self._http_routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        if any(path == request.path for _, path in self._http_routes):
            return web.json_response({"error": {"code": "bad_request", "message":
                                      f"{request.method} is not served at {request.path}"}}, status=405)
        return web.json_response({"error": {"code": "not_found", "message":
                                  f"nothing is served at {request.path[:100]}"}}, status=404)

    async def _health(self, request: web.Request) -> web.Response:
        """application/health+json: overall status (the worst check's), version, checks; plus
        the node's own fields (ok, id, peers) that probes and scripts read."""
        node = self.health()
        server = self._runner.server if self._runner is not None else None
        checks = {"transport:connections": [{
            "componentType": "system", "observedValue": len(server.connections) if server else 0,
            "observedUnit": "connections", "status": "pass"}],
            "transport:peers": [{"componentType": "system", "observedValue": node.get("peers", 0),
                                 "observedUnit": "peers", "status": "pass"}]}
        for name, check in list(self._health_checks.items()):
            try:
                entry = dict(check())
            except Exception as exc:  # a broken check reports itself; /health still answers
                entry = {"status": "fail", "output": f"{type(exc).__name__}: {exc}"[:200]}
            if entry.get("status") not in _HEALTH_RANK:
                entry["status"] = "fail"
            checks[name] = [entry]
        status = max((e[0]["status"] for e in checks.values()), key=_HEALTH_RANK.__getitem__)
        body = {"status": status, "version": "1", "releaseId": _release(),
                "serviceId": node.get("id"), "description": "Covey node",
                "checks": checks, "ok": status != "fail", **node}
        return web.json_response(body, status=503 if status == "fail" else 200, content_type=HEALTH_TYPE)

    # -- inbound -----------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        host = request.remote or "?"
        pool = "tor" if self._via_tor(host) else "direct"
        if not self._make_room(pool, host):
            self.rejected_handshakes += 1
            return web.Response(status=503, text="busy: too many handshakes in progress; retry later")
        slot = _Slot(pool, host, asyncio.get_running_loop().time(), request.transport)
        self._handshakes.append(slot)
        # No aiohttp heartbeat or autoping: PeerConnection keeps the link alive itself.
        ws = web.WebSocketResponse(max_msg_size=self.settings.max_frame + 64, compress=False,
                                   autoping=False)
        conn = None
        try:
            await ws.prepare(request)
            conn = await asyncio.wait_for(self._respond(ws, host, slot), self.settings.connect_timeout)
        except (CoveyError, asyncio.TimeoutError) as exc:
            self.rejected_handshakes += 1
            reason = str(exc) if isinstance(exc, CoveyError) else "handshake timed out"
            if slot.evicted:
                reason = "evicted: the handshake stalled while others waited"
            suppressed = self._refusals.allow(host)
            if suppressed is not None:
                log.info("inbound handshake from %s refused: %s%s", host, reason,
                         f" ({suppressed} more refusals not logged)" if suppressed else "")
            if not ws.closed:
                await ws.close(code=CLOSE_HANDSHAKE, message=reason.encode()[:120])
            return ws
        except (ConnectionError, RuntimeError) as exc:
            log.debug("inbound handshake from %s lost: %s", host, exc)
            return ws
        finally:
            if not slot.evicted:
                self._handshakes.remove(slot)
        await self.on_connection(conn)
        return ws

    def _via_tor(self, host: str) -> bool:
        """Inbound through our onion service: tor on, and the socket comes from tor on 127.0.0.1."""
        return self.settings.proxy_mode == "tor" and host in _TOR_SOURCES

    def _make_room(self, pool: str, host: str) -> bool:
        """Whether a handshake from ``host`` may start now, evicting a stalled one if needed."""
        s = self.settings
        in_pool = [h for h in self._handshakes if h.pool == pool]
        if pool == "tor":
            pool_cap, host_cap = s.tor_handshakes, s.tor_handshakes
        else:
            pool_cap, host_cap = s.max_handshakes, PER_ADDRESS_HANDSHAKES
        same_host = [h for h in in_pool if h.host == host]
        if len(same_host) >= host_cap:
            candidates = same_host
        elif len(in_pool) >= pool_cap:
            counts: dict[str, int] = {}
            for h in in_pool:
                counts[h.host] = counts.get(h.host, 0) + 1
            heaviest = max(counts, key=lambda h: counts[h])   # the address holding the most slots pays
            candidates = [h for h in in_pool if h.host == heaviest]
        else:
            return True
        cutoff = asyncio.get_running_loop().time() - EVICT_AFTER
        stalled = [h for h in candidates if h.started <= cutoff]
        if not stalled:
            return False
        victim = min(stalled, key=lambda h: (h.hello, h.started))  # no hello yet first, then oldest
        victim.evicted = True
        self._handshakes.remove(victim)
        self.evicted_handshakes += 1
        if victim.transport is not None:
            victim.transport.close()
        return True

    async def _respond(self, ws: web.WebSocketResponse, host: str, slot: _Slot) -> PeerConnection:
        try:
            hello_bytes = await asyncio.wait_for(_receive(ws), self.settings.hello_timeout)
        except asyncio.TimeoutError:
            raise TimedOut(f"no hello within {self.settings.hello_timeout:g} s") from None
        slot.hello = True
        try:
            hello = parse_hello(hello_bytes)
        except CoveyError as exc:
            await ws.send_bytes(wire.pack_plain({"error": exc.code, "message": str(exc)}))
            raise
        mode, choice = choose(self.local, hello)
        await ws.send_bytes(choice)
        if mode is None:
            raise HandshakeFailed(f"peer offers only {', '.join(hello['modes'])}; "
                                  f"this node requires at least {self.local.min}")
        hs = NoiseHandshake(self.local, mode, False, hello_bytes, choice)
        try:
            msg2 = hs.responder_step1(await _receive(ws))
        except CoveyError as exc:  # psk0: a wrong network key fails here, before we say who we are
            await ws.send_bytes(refusal(exc))
            raise
        await ws.send_bytes(msg2)
        try:
            hs.responder_step2(await _receive(ws))
        except CoveyError as exc:
            await ws.send_bytes(wire.pack_plain({"error": exc.code, "message": str(exc)}))
            raise
        conn = self._connection(ws, hs, initiator=False, remote=host, listen_port=hello["port"])
        try:
            self.admit(conn.peer_id, host)
        except CoveyError as exc:
            await conn.send(wire.Message("error", {"code": exc.code, "message": str(exc)}))
            await conn.close(CLOSE_POLICY, str(exc))
            raise
        await conn.send(wire.Message("ready", {}))
        return conn

    # -- outbound ----------------------------------------------------------------
    def http_client(self) -> aiohttp.ClientSession:
        """The session services use for plain HTTP to peers: the same route as peer links
        (direct, SOCKS5 or tor; it fails closed when the proxy is down)."""
        return self._client()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            s = self.settings
            if s.proxy_mode == "off":
                connector = aiohttp.TCPConnector(limit=0, force_close=True)
            else:
                from aiohttp_socks import ProxyConnector
                from core.net.proxy import proxy_url
                connector = ProxyConnector.from_url(proxy_url(s, self.proxy_password), rdns=True, limit=0, force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def dial(self, address: str, expected_id: str | None = None) -> PeerConnection:
        """Connect and authenticate; KeyMismatch when the peer is not who we pinned."""
        host, port = parse_hostport(address)
        url = f"http://{host}:{port}{wire.WS_PATH}"
        try:
            ws = await asyncio.wait_for(self._client().ws_connect(
                url, max_msg_size=self.settings.max_frame + 64, compress=0,
                autoping=False), self.settings.connect_timeout)
        except asyncio.TimeoutError:
            raise TimedOut(f"connecting to {address} timed out") from None
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 503:
                raise RateLimited(f"{address} is busy (too many handshakes); retrying later") from None
            raise PeerUnreachable(f"{address} is not a Covey node (HTTP {exc.status})") from None
        except Exception as exc:  # connector and proxy errors come in many types
            raise _dial_error(self.settings, address, exc) from None
        try:
            return await asyncio.wait_for(self._initiate(ws, address, expected_id),
                                          self.settings.connect_timeout)
        except asyncio.TimeoutError:
            await ws.close()
            raise TimedOut(f"handshake with {address} timed out") from None
        except BaseException:
            await ws.close()
            raise

    async def _initiate(self, ws, address: str, expected_id: str | None) -> PeerConnection:
        peer = f"the peer at {address}"
        hello = make_hello(self.local)
        await ws.send_bytes(hello)
        choice = await _receive(ws, peer)
        mode = parse_choice(choice, self.local, peer)
        hs = NoiseHandshake(self.local, mode, True, hello, choice)
        await ws.send_bytes(hs.initiator_step1())
        msg3 = hs.initiator_step2(await _receive(ws, peer))
        peer_id = _authenticated(hs)
        if expected_id and peer_id != expected_id:
            raise KeyMismatch(
                f"{peer} presented key {peer_id[:16]}… but {expected_id[:16]}… is pinned for it: "
                "possible man in the middle; connection refused")
        # The connection (and its inbox, core.net.inbox) before msg3: until the responder
        # has it, it sends nothing, so the frame queue can be swapped safely now.
        conn = self._connection(ws, hs, initiator=True, remote=address, listen_port=0)
        await ws.send_bytes(msg3)
        first = await _receive(ws, peer)
        try:
            plain = conn.channel.open(first)
            if plain[:1] != bytes([wire.FRAME_WHOLE]):
                raise HandshakeFailed(f"{peer} sent a chunk instead of completing the handshake")
            reply = wire.decode(plain[1:], self.settings.max_frame)
        except MalformedMessage:
            err = wire.unpack_plain(first)  # the responder could not complete the handshake
            raise from_code(str(err.get("error")), str(err.get("message", "handshake refused"))) from None
        if reply.type == "error":
            raise from_code(str(reply.body.get("code")), f"{peer} refused: {reply.body.get('message')}")
        if reply.type != "ready":
            raise HandshakeFailed(f"{peer} sent {reply.type!r} instead of completing the handshake")
        return conn

    def _connection(self, ws, hs: NoiseHandshake, *, initiator: bool, remote: str,
                    listen_port: int) -> PeerConnection:
        """The PeerConnection over ``ws``, with an inbox under it. Called between handshake
        messages, while the peer sends nothing (the initiator before msg3, the responder
        after reading it and before "ready")."""
        s, peer_id = self.settings, _authenticated(hs)
        conn = PeerConnection(ws, hs.channel(), peer_id, hs.peer_name, initiator=initiator,
                              remote=remote, listen_port=listen_port, max_frame=s.max_frame,
                              max_message=s.max_message, limits=self.limits(peer_id),
                              budget=self.budget, unknown_budget=self.unknown_budget,
                              partial_timeout=s.partial_timeout, heartbeat=s.heartbeat)
        conn.inbox = inbox.install(ws, s.max_frame + 64, asyncio.get_running_loop())
        if conn.inbox is not None:
            conn.inbox.conn = conn
        return conn


def _authenticated(hs: NoiseHandshake) -> str:
    """The peer's id once the handshake has authenticated it."""
    if hs.peer_id is None:   # never so after the last handshake step: it sets the id or raises
        raise HandshakeFailed("the handshake ended without authenticating the peer")
    return hs.peer_id


def _release() -> str:
    """The installed covey version (health+json ``releaseId``)."""
    from importlib import metadata
    try:
        return metadata.version("covey")
    except metadata.PackageNotFoundError:
        return "unknown"


async def _receive(ws, peer: str = "the peer") -> bytes:
    """One binary handshake frame; a close or anything else ends the handshake with its reason."""
    msg = await ws.receive()
    for _ in range(4):  # a PING is answered (no autoping on these sockets); a few, not forever
        if msg.type is aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is not aiohttp.WSMsgType.PONG:
            break
        msg = await ws.receive()
    if msg.type == aiohttp.WSMsgType.BINARY:
        if len(msg.data) > HANDSHAKE_FRAME_MAX:
            raise MalformedMessage("handshake frame too large")
        return msg.data
    if msg.type == aiohttp.WSMsgType.CLOSE:
        raise HandshakeFailed(f"{peer} closed the connection: {msg.extra or 'no reason given'}")
    raise HandshakeFailed(f"{peer} closed the connection during the handshake")


def _proxy_of(settings: Settings) -> tuple:
    return settings.proxy_mode, settings.proxy_host, settings.proxy_port, settings.proxy_user


def _dial_error(settings: Settings, address: str, exc: Exception) -> CoveyError:
    name = type(exc).__name__
    if settings.proxy_mode != "off" and ("Proxy" in name or isinstance(exc, ConnectionRefusedError)):
        where = f"{settings.proxy_host}:{settings.proxy_port}"
        if "ProxyError" == name or "rejected" in str(exc).lower():
            return PeerUnreachable(f"the {settings.proxy_mode} proxy could not reach {address}: {exc}")
        return ProxyUnreachable(f"the {settings.proxy_mode} proxy at {where} is unreachable ({exc}); "
                                "not connecting directly (fail closed)")
    reason = getattr(exc, "os_error", None) or exc
    if isinstance(reason, ConnectionRefusedError):
        return PeerUnreachable(f"could not reach {address}: connection refused (nothing is listening "
                               "there: is the node running, and is the port right?)")
    return PeerUnreachable(f"could not reach {address}: {getattr(reason, 'strerror', None) or reason}")


__all__ = ["Transport", "CLOSE_PROTOCOL", "CLOSE_HANDSHAKE"]
