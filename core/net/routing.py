"""How the node reaches its peers: directly, through a SOCKS5 proxy, or through tor.

With tor the node either starts a tor it owns or attaches to a running one,
sends outbound connections through its SOCKS port (remote DNS, so ``.onion``
names resolve inside tor) and publishes itself as an onion service. It fails
closed: while the chosen tor is down or still bootstrapping nothing is
dialled, and nothing ever silently goes direct.
"""
from __future__ import annotations

import logging
from pathlib import Path

from core import events as ev
from core.config import parse_hostport, with_changes
from core.errors import BadRequest, CoveyError, ProxyUnreachable
from core.net.proxy import probe_socks5, public_proxy, read_password, save_password
from core.net.tor import TorController

log = logging.getLogger("covey.routing")


class OutboundRoute:
    """The node's proxy settings and, when tor is chosen, its tor controller."""

    def __init__(self, node) -> None:
        self.node = node
        self.tor: TorController | None = None
        self.tor_error: str | None = None
        self.tor_managed = False  # proxy mode tor with our controller (not a bare SOCKS port)

    async def start(self) -> None:
        """At node start: bring up tor if the settings chose it (failures leave dials closed)."""
        s = self.node.settings
        if s.proxy_mode == "tor" and not s.proxy_port:
            try:
                await self._start_tor()
            except CoveyError as exc:
                log.warning("tor did not start: %s; outbound connections fail closed until it does", exc)

    async def stop(self) -> None:
        tor, self.tor = self.tor, None
        if tor is not None:
            await tor.stop()

    def check(self) -> None:
        """Fail closed: with our tor chosen, nothing is dialled until it is bootstrapped."""
        if not self.tor_managed:
            return
        if self.tor is None:
            raise ProxyUnreachable(f"tor is not running ({self.tor_error or 'not started'}); "
                                   "not connecting directly (fail closed)")
        self.tor.check_ready()

    @property
    def via_tor(self) -> bool:
        """Whether the node is reached (and reaches out) through tor."""
        return self.node.settings.proxy_mode == "tor"

    def onion(self) -> str | None:
        return self.tor.address if self.tor is not None else None

    async def set_proxy(self, mode: str, host: str = "", port: int = 0, user: str = "",
                        password: str | None = None) -> dict:
        """Off, a SOCKS5 proxy, or a tor SOCKS port used as a plain proxy (no control port).

        ``password`` None keeps the saved one, "" removes it. Checked before anything stops."""
        changes = {"proxy_mode": mode, "proxy_host": host, "proxy_port": port, "proxy_user": user}
        with_changes(self.node.settings, **changes)
        await self.stop()
        self.tor_managed, self.tor_error = False, None
        if password is not None:
            save_password(self.node.home, password)
        await self.node._change(changes, proxy_password=password)
        return self.view()

    async def use_tor(self, control: str | None = None, config: str | None = None) -> dict:
        """Route outbound connections through tor and publish the node as an onion service.

        ``control`` (HOST:PORT) attaches to a running tor; without it the node
        starts its own tor (settings ``tor_config`` / ``tor_public_network``).
        ``config`` sets ``tor_config``: the torrc lines (a private network's
        DirAuthority lines) our own tor joins with.
        Raises why tor did not start; dials fail closed meanwhile.
        """
        changes = {"proxy_mode": "tor", "proxy_host": "", "proxy_port": 0, "proxy_user": "",
                   "tor_control": control or ""}
        if config is not None:
            if control:
                raise BadRequest("--tor-config is for a tor this node starts; it cannot go with --tor-control")
            changes["tor_config"] = _readable_config(config)
        with_changes(self.node.settings, **changes)
        await self.stop()
        save_password(self.node.home, None)
        await self.node._change(changes, proxy_password="")
        await self._start_tor()
        return self.view()

    async def choose(self, *, socks5: str | None = None, tor: bool = False,
                     tor_control: str | None = None, tor_config: str | None = None,
                     user: str | None = None, password: str | None = None) -> dict:
        """The user's choice, as a form or `covey proxy set` gives it: exactly one of a
        SOCKS5 proxy (HOST:PORT, optional user and password) or tor (ours, optionally
        with ``tor_config``, or a running one at ``tor_control``)."""
        if bool(socks5) == bool(tor):
            raise BadRequest("give exactly one of --socks5 HOST:PORT or --tor")
        if tor:
            return await self.use_tor(tor_control, tor_config)
        if tor_control or tor_config:
            raise BadRequest("--tor-control and --tor-config go with --tor")
        host, port = parse_hostport(socks5 or "")
        return await self.set_proxy("socks5", host, port, user or "", password)

    async def test_proxy(self, host: str | None = None, port: int | None = None, user: str | None = None,
                         password: str | None = None, target: str | None = None,
                         timeout: float = 10.0) -> dict:
        """Try the SOCKS5 proxy: log in and have it connect to ``target`` (HOST:PORT; by default
        this node's own listener). Unset arguments take the saved settings (the saved password
        when ``password`` is None). Raises ProxyUnreachable with the reason; nothing is sent."""
        s = self.node.settings
        host = host if host is not None else s.proxy_host
        port = port if port is not None else s.proxy_port
        user = user if user is not None else s.proxy_user
        if not host or not port:
            raise BadRequest("no SOCKS5 proxy to test: give its host and port")
        if password is None:
            password = read_password(self.node.home)
        if target is None:
            listen_host, _ = s.listen_hostport
            own_host = "127.0.0.1" if listen_host in ("0.0.0.0", "::", "") else listen_host
            target_host, target_port = own_host, self.node.transport.port
        else:
            target_host, target_port = parse_hostport(target)
        await probe_socks5(host, port, user, password, (target_host, target_port), timeout)
        return {"ok": True, "proxy": f"{host}:{port}", "target": f"{target_host}:{target_port}"}

    async def _start_tor(self) -> None:
        node, s = self.node, self.node.settings
        self.tor_managed = True
        tor = TorController(node.home, control=s.tor_control or None,
                            network_config=Path(s.tor_config).expanduser() if s.tor_config else None,
                            allow_public_network=s.tor_public_network,
                            on_status=lambda status: node.events.emit(ev.TOR_STATUS, **status))
        try:
            await tor.start()
        except CoveyError as exc:
            self.tor_error = str(exc)
            node.events.emit(ev.ERROR, message=f"tor: {exc}")
            raise
        self.tor, self.tor_error = tor, None
        if tor.socks is None:   # never so: start() learns the SOCKS port or raises
            raise RuntimeError("tor started without a SOCKS port")
        host, port = tor.socks
        # In memory only: an owned tor's SOCKS port changes from run to run.
        await node._change({"proxy_host": host, "proxy_port": port}, persist=False)
        node._spawn(self._publish_onion(tor))

    async def _publish_onion(self, tor: TorController) -> None:
        await tor.wait_bootstrapped(timeout=600)
        host, _ = self.node.settings.listen_hostport
        target = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        await tor.publish(self.node.transport.port, target_host=target)
        self.node.events.emit(ev.TOR_STATUS, **tor.status())

    def _require_tor(self) -> TorController:
        if self.tor is None:
            raise BadRequest("tor is not on: `covey proxy set --tor` first")
        return self.tor

    async def new_identity(self) -> dict:
        return await self._require_tor().new_identity()

    async def circuits(self) -> list[dict]:
        return await self._require_tor().circuits()

    def view(self) -> dict:
        """What `covey proxy show` prints (never the password)."""
        view = public_proxy(self.node.home, self.node.settings)
        if self.tor_managed:
            view["tor"] = (self.tor.status() if self.tor is not None
                           else {"running": False, "error": self.tor_error})
        return view


def _readable_config(config: str) -> str:
    """The absolute path of a tor config file that exists and can be read (BadRequest otherwise)."""
    path = Path(config).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"the tor config {config!r} must be an absolute path")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise BadRequest(f"cannot read the tor config {path}: {exc.strerror}") from None
    return str(path)
