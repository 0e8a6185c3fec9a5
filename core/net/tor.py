"""Tor for a node: a SOCKS port for outbound connections, an onion service for inbound.

:class:`TorController` either attaches to a running tor (its control port,
cookie or password authentication) or launches a tor it owns, with its files
in ``HOME/tor``. stem 1.8 is blocking, so its calls run in worker threads and
its events (bootstrap progress, circuits, the control connection closing)
are handed back to the event loop.

An owned tor never starts with tor's default configuration: the caller gives
the network's config (a private network's ``DirAuthority`` lines) or opts in
to the public Tor network explicitly with ``allow_public_network=True``.

Fail closed: :meth:`TorController.check_ready` raises ``ProxyUnreachable``
while tor is down or still bootstrapping, so the node never dials direct.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from core.config import parse_hostport
from core.errors import (BadRequest, CorruptKeyFile, CoveyError, ProxyUnreachable, RateLimited,
                         TimedOut, TorError)
from core.files import write_atomic

if TYPE_CHECKING:
    from stem.control import Controller

log = logging.getLogger("covey.tor")

TOR_DIR = "tor"
ONION_KEY_FILE = "onion.key"
DEFAULT_VIRTUAL_PORT = 8102
KILL_AFTER = 15.0          # seconds an owned tor gets to honour SIGTERM
CONTROL_FILE_WAIT = 30.0   # seconds for a launched tor to open its control port
KEY_TYPE = "ED25519-V3"

StatusCallback = Callable[[dict], Any]


class TorController:
    """One tor: attached (``control="HOST:PORT"``) or owned (launched from ``HOME/tor/torrc``)."""

    def __init__(self, home: Path, *, control: str | None = None, password: str | None = None,
                 network_config: Path | None = None, extra_config: Sequence[str] = (),
                 allow_public_network: bool = False, tor_binary: str = "tor",
                 on_status: StatusCallback | None = None):
        self.home = Path(home)
        self.dir = self.home / TOR_DIR
        self.control_address = control
        self.password = password
        self.network_config = Path(network_config) if network_config else None
        self.extra_config = list(extra_config)
        self.allow_public_network = allow_public_network
        self.tor_binary = tor_binary
        self.on_status = on_status
        self.owned = control is None
        self.socks: tuple[str, int] | None = None
        self.control: tuple[str, int] | None = None
        self.onion: str | None = None
        self.bootstrap = 0
        self.summary = "not started"
        self.running = False
        self._service_id: str | None = None
        self._virtual_port = DEFAULT_VIRTUAL_PORT
        self._controller: Controller | None = None
        self._proc: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bootstrapped: asyncio.Event | None = None
        self._built: set[str] = set()
        # stem deadlocks when close() runs in one thread while another calls the controller
        # (close joins its event thread, which waits for the listener lock the other call holds)
        self._control_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Attach to the configured tor or launch an owned one; then follow its bootstrap."""
        if self._controller is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._bootstrapped = asyncio.Event()
        self.bootstrap, self.summary, self._built = 0, "starting", set()
        try:
            if self.control_address is None:  # owned
                host, port = await self._launch()
            else:
                host, port = parse_hostport(self.control_address)
            self.control = (host, port)
            controller = await asyncio.to_thread(self._connect, host, port)
            self._controller = controller
            socks, progress, summary, built = await self._controlled(self._follow, controller)
        except BaseException:
            await self._shutdown()
            raise
        self.running = True
        self._built |= built
        log.info("tor %s: control %s:%d, socks %s:%d", "launched" if self.owned else "attached",
                 host, port, *socks)
        if not self._set_bootstrap(progress, summary):
            self._emit()

    async def stop(self) -> None:
        """Remove the onion service, close the control connection, stop an owned tor (idempotent)."""
        if self._service_id is not None and self._controller is not None:
            try:
                await self.unpublish()
            except CoveyError as exc:
                log.info("could not remove the onion service: %s", exc)
        await self._shutdown()
        if self.running:
            self.running = False
            self.summary = "stopped"
            self._emit()

    async def wait_bootstrapped(self, timeout: float = 120.0) -> None:
        """Return once tor reports 100 %; TimedOut (with where it is stuck) otherwise."""
        if self._bootstrapped is None:
            raise TorError("tor is not started: call start() first")
        deadline = time.monotonic() + timeout
        while not self._bootstrapped.is_set():
            if not self.running:
                raise ProxyUnreachable(f"tor stopped while bootstrapping ({self.summary})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut(f"tor did not finish bootstrapping within {timeout:g} s "
                               f"(stuck at {self.bootstrap}%: {self.summary}); is its network reachable?")
            try:
                await asyncio.wait_for(self._bootstrapped.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                self._check_process()

    def check_ready(self) -> None:
        """Raise ProxyUnreachable unless tor is running and bootstrapped (fail closed)."""
        try:
            self._check_process()
        except TorError as exc:
            raise ProxyUnreachable(f"{exc}; not connecting directly (fail closed)") from None
        if not self.running:
            raise ProxyUnreachable("tor is not running; not connecting directly (fail closed)")
        if self.bootstrap < 100:
            raise ProxyUnreachable(f"tor is still bootstrapping ({self.bootstrap}%: {self.summary}); "
                                   "not connecting directly (fail closed)")

    # -- onion service -------------------------------------------------------------------
    async def publish(self, local_port: int, virtual_port: int = DEFAULT_VIRTUAL_PORT,
                      timeout: float = 60.0, target_host: str = "127.0.0.1") -> str:
        """Publish ``target_host:local_port`` as ``<onion>:virtual_port``; returns ``xxx.onion``.

        The service key lives in ``HOME/tor/onion.key`` (0600) so the address
        survives restarts. Returns once a directory accepted the descriptor.
        """
        import stem
        from stem.control import EventType
        controller = self._require_controller()
        if not (0 < local_port < 65536 and 0 < virtual_port < 65536):
            raise BadRequest("onion service ports must be 1-65535")
        if self._service_id is not None:
            await self.unpublish()
        key_path = self.dir / ONION_KEY_FILE
        key_type, key_content = self._read_onion_key(key_path)
        # Publication is awaited here, not in a stem thread: a cancelled publish leaves no
        # thread blocked for `timeout` seconds (it would hold up the loop's shutdown).
        events: asyncio.Queue = asyncio.Queue()

        def on_descriptor(event) -> None:  # stem's event thread
            self._call_soon(events.put_nowait, event)

        await self._controlled(controller.add_event_listener, on_descriptor, EventType.HS_DESC)
        try:
            try:
                response = await self._controlled(
                    controller.create_ephemeral_hidden_service,
                    {virtual_port: _target(target_host, local_port)},
                    key_type=key_type, key_content=key_content)
            except stem.ControllerError as exc:
                raise TorError(f"tor refused to publish the onion service: {exc}") from None
            if key_type == "NEW":
                self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomic(key_path, f"{response.private_key_type}:{response.private_key}\n".encode(), 0o600)
            self._service_id, self._virtual_port = response.service_id, virtual_port
            try:
                await self._await_upload(events, response.service_id, timeout)
            except CoveyError:
                await self.unpublish()
                raise
        finally:
            try:
                await self._controlled(controller.remove_event_listener, on_descriptor)
            except stem.ControllerError as exc:  # the control connection closed meanwhile
                log.debug("could not unsubscribe from HS_DESC: %s", exc)
        self.onion = f"{response.service_id}.onion"
        log.info("published onion service %s -> %s", self.address, _target(target_host, local_port))
        return self.onion

    async def _await_upload(self, events: asyncio.Queue, service_id: str, timeout: float) -> None:
        """Wait until one directory accepted the descriptor (as stem's await_publication does)."""
        from stem import HSDescAction
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        uploading: set[str] = set()
        failures: list[str] = []
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimedOut(f"tor did not publish the onion service within {timeout:g} s "
                               f"(bootstrap {self.bootstrap}%: {self.summary})")
            try:
                async with asyncio.timeout(left):    # not wait_for: 3.11's can lose a cancellation
                    event = await events.get()
            except TimeoutError:
                continue
            # tor names the service in UPLOAD events only; UPLOADED/FAILED name the directory.
            if event.action == HSDescAction.UPLOAD and event.address == service_id:
                uploading.add(event.directory_fingerprint)
            elif event.action == HSDescAction.UPLOADED and event.directory_fingerprint in uploading:
                return
            elif event.action == HSDescAction.FAILED and event.directory_fingerprint in uploading:
                failures.append(f"{event.directory_fingerprint} ({event.reason})")
                if len(failures) == len(uploading):
                    raise TorError("no onion service directory accepted the descriptor: "
                                   + ", ".join(failures))

    async def unpublish(self) -> None:
        """Withdraw the onion service (the key file stays, so the address comes back)."""
        import stem
        service_id, self._service_id, self.onion = self._service_id, None, None
        if service_id is None or self._controller is None:
            return
        try:
            await self._controlled(self._controller.remove_ephemeral_hidden_service, service_id)
        except stem.ControllerError as exc:
            raise TorError(f"tor could not remove the onion service: {exc}") from None

    @staticmethod
    def _read_onion_key(path: Path) -> tuple[str, str]:
        if not path.exists():
            return "NEW", KEY_TYPE
        text = path.read_text().strip()
        key_type, _, content = text.partition(":")
        try:
            valid = key_type == KEY_TYPE and len(base64.b64decode(content, validate=True)) == 64
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise CorruptKeyFile(f"{path} is not an {KEY_TYPE} onion service key; move it aside "
                                 "to get a new onion address")
        return key_type, content

    # -- identity and circuits -----------------------------------------------------------
    async def new_identity(self) -> dict:
        """Ask tor for new circuits (NEWNYM); RateLimited while tor would ignore it."""
        from stem import Signal
        controller = self._require_controller()
        wait = controller.get_newnym_wait()
        if wait > 0:
            raise RateLimited(f"tor allows a new identity once every 10 s; try again in {wait:.0f} s")
        await self._controlled(controller.signal, Signal.NEWNYM)
        return {"ok": True, "next_in": round(controller.get_newnym_wait(), 1)}

    async def circuits(self) -> list[dict]:
        """Tor's circuits: id, status, purpose and path (fingerprint, nickname per hop)."""
        controller = self._require_controller()
        found = await self._controlled(controller.get_circuits)
        return [{"id": c.id, "status": c.status, "purpose": c.purpose,
                 "path": [{"fingerprint": fp, "nickname": nick} for fp, nick in c.path]}
                for c in found]

    @property
    def address(self) -> str | None:
        """``xxx.onion:PORT`` as peers give it to `covey peers add` (None until published)."""
        return f"{self.onion}:{self._virtual_port}" if self.onion else None

    @property
    def pid(self) -> int | None:
        """The owned tor's process id (None when attached or stopped)."""
        return self._proc.pid if self._proc is not None else None

    def status(self) -> dict:
        """What `covey proxy show` reports under ``"tor"``."""
        return {"running": self.running, "bootstrap": self.bootstrap, "summary": self.summary,
                "onion": self.onion, "address": self.address,
                "socks": f"{self.socks[0]}:{self.socks[1]}" if self.socks else None,
                "control": f"{self.control[0]}:{self.control[1]}" if self.control else None,
                "owned": self.owned, "pid": self.pid, "circuits": len(self._built)}

    # -- launching an owned tor ----------------------------------------------------------
    def torrc_lines(self) -> list[str]:
        """The owned tor's config: ours first, then the network config and extra lines."""
        network = self.network_config.read_text().splitlines() if self.network_config else []
        extra = network + self.extra_config
        if not self.allow_public_network:
            if self.network_config is None:
                raise TorError("refusing to start tor without a network config: attach to a running "
                               "tor (`covey proxy set --tor --tor-control HOST:PORT`), or give the "
                               "tor network's config file (setting tor_config, its DirAuthority "
                               "lines), or opt in to the public Tor network (tor_public_network)")
            if not any(line.split()[:1] == ["DirAuthority"] for line in extra):
                raise TorError(f"{self.network_config} has no DirAuthority lines; refusing to start "
                               "a tor that would join the public Tor network without an explicit opt-in")
        data = self.dir / "data"
        return [f"DataDirectory {data}", "SocksPort 127.0.0.1:auto", "ControlPort 127.0.0.1:auto",
                f"ControlPortWriteToFile {self.dir / 'control.port'}", "CookieAuthentication 1",
                f"Log notice file {self.dir / 'notice.log'}", "RunAsDaemon 0",
                f"__OwningControllerProcess {os.getpid()}", *extra]

    async def _launch(self) -> tuple[str, int]:
        """Start an owned tor; returns its control address once it wrote it."""
        binary = shutil.which(self.tor_binary)
        if binary is None:
            raise TorError(f"tor is not installed ({self.tor_binary!r} not found); install the "
                           "`tor` package or attach to a running tor")
        lines = self.torrc_lines()
        (self.dir / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        torrc, defaults = self.dir / "torrc", self.dir / "torrc-defaults"
        write_atomic(torrc, ("\n".join(lines) + "\n").encode(), 0o600)
        write_atomic(defaults, b"", 0o600)  # never /etc/tor/torrc-defaults
        port_file = self.dir / "control.port"
        port_file.unlink(missing_ok=True)
        self._proc = subprocess.Popen([binary, "--defaults-torrc", str(defaults), "-f", str(torrc)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + CONTROL_FILE_WAIT
        while True:
            self._check_process()
            if port_file.exists():
                text = port_file.read_text().strip()
                if text.startswith("PORT="):
                    return parse_hostport(text[5:])
            if time.monotonic() > deadline:
                raise TorError(f"tor did not open its control port within {CONTROL_FILE_WAIT:g} s; "
                               f"see {self.dir / 'notice.log'}")
            await asyncio.sleep(0.1)

    def _check_process(self) -> None:
        if self._proc is None or self._proc.poll() is None:
            return
        code, self._proc = self._proc.returncode, None
        self.running = False
        self.summary = f"tor exited with code {code}"
        raise TorError(f"tor exited with code {code}: {self._last_log_problem()}")

    def _last_log_problem(self) -> str:
        path = self.dir / "notice.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        bad = [ln for ln in lines if "[err]" in ln or "[warn]" in ln]
        return bad[-1].split("] ", 1)[-1] if bad else f"see {path}"

    # -- control connection (worker threads) ----------------------------------------------
    def _connect(self, host: str, port: int) -> Controller:
        import stem
        from stem.connection import AuthenticationFailure
        from stem.control import Controller
        try:
            controller = Controller.from_port(host, port)
        except stem.SocketError as exc:
            raise TorError(f"cannot reach tor's control port at {host}:{port} ({exc}); "
                           "is tor running with ControlPort set?") from None
        try:
            controller.authenticate(password=self.password)
        except (AuthenticationFailure, stem.SocketError) as exc:
            controller.close()
            raise TorError(f"tor's control port at {host}:{port} refused authentication: {exc}") from None
        # For an owned tor (__OwningControllerProcess is our pid) stem sent TAKEOWNERSHIP:
        # it exits when this connection closes, even if this process is killed.
        return controller

    def _follow(self, controller: Controller) -> tuple[tuple[str, int], str, str, set[str]]:
        """Learn the SOCKS port, subscribe to events; returns (socks, progress, summary, built circuits)."""
        from stem.control import EventType, Listener
        listeners = controller.get_listeners(Listener.SOCKS, [])
        if not listeners:
            raise TorError("this tor has no SocksPort; enable one (SocksPort 9050)")
        host, port = listeners[0]
        socks = ("127.0.0.1" if host in ("0.0.0.0", "") else host, int(port))
        self.socks = socks
        controller.add_event_listener(self._on_client_status, EventType.STATUS_CLIENT)
        controller.add_event_listener(self._on_circuit, EventType.CIRC)
        controller.add_status_listener(self._on_state)
        phase = controller.get_info("status/bootstrap-phase", "")
        args = dict(part.split("=", 1) for part in _split_quoted(phase) if "=" in part)
        built = {c.id for c in controller.get_circuits([]) if c.status == "BUILT"}
        return socks, args.get("PROGRESS", "0"), args.get("SUMMARY", ""), built

    async def _controlled(self, call: Callable, *args, **kwargs) -> Any:
        """Run one blocking stem call in a thread, never at the same time as another."""
        def locked():
            with self._control_lock:
                return call(*args, **kwargs)
        return await asyncio.to_thread(locked)

    def _shutdown_controller(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.remove_status_listener(self._on_state)
            controller.close()

    async def _shutdown(self) -> None:
        await self._controlled(self._shutdown_controller)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, KILL_AFTER)
        except subprocess.TimeoutExpired:
            log.warning("tor (pid %d) ignored SIGTERM for %g s; killing it", proc.pid, KILL_AFTER)
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)

    def _require_controller(self) -> Controller:
        self._check_process()
        if self._controller is None or not self.running:
            raise ProxyUnreachable("tor is not running; start it first")
        return self._controller

    # -- events: stem's thread -> the event loop -----------------------------------------
    def _on_client_status(self, event) -> None:
        if event.action == "BOOTSTRAP":
            self._call_soon(self._set_bootstrap, event.arguments.get("PROGRESS", "0"),
                            event.arguments.get("SUMMARY", ""))

    def _on_circuit(self, event) -> None:
        self._call_soon(self._circuit_changed, event.id, event.status)

    def _on_state(self, controller, state, timestamp) -> None:
        from stem.control import State
        if state == State.CLOSED:
            self._call_soon(self._control_closed)

    def _call_soon(self, fn, *args) -> None:
        loop = self._loop
        try:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)
        except RuntimeError as exc:  # the loop closed between the check and the call
            log.debug("tor event dropped: %s", exc)

    def _set_bootstrap(self, progress: str, summary: str) -> bool:
        """Record progress; True when it changed and listeners were told."""
        try:
            percent = max(0, min(100, int(progress)))
        except ValueError:
            log.debug("unparseable bootstrap progress %r", progress)
            return False
        # Events queued before the first GETINFO answer may be older: progress only moves forward.
        if percent < self.bootstrap or (percent, summary) == (self.bootstrap, self.summary):
            return False
        self.bootstrap, self.summary = percent, summary
        if percent == 100 and self._bootstrapped is not None:
            self._bootstrapped.set()
        if not self.running:
            return False
        self._emit()
        return True

    def _circuit_changed(self, circuit_id: str, status: str) -> None:
        if status == "BUILT":
            self._built.add(circuit_id)
        elif status in ("FAILED", "CLOSED"):
            self._built.discard(circuit_id)

    def _control_closed(self) -> None:
        if self.running:
            log.warning("tor's control connection closed; outbound connections now fail closed")
            self.running = False
            self.summary = "tor's control connection closed"
            self._emit()

    def _emit(self) -> None:
        if self.on_status is None:
            return
        try:
            self.on_status({"bootstrap": self.bootstrap, "summary": self.summary,
                            "running": self.running})
        except Exception:  # a broken listener must not break tor control
            log.exception("tor status listener failed")


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_quoted(text: str) -> list[str]:
    """Split ``A=1 B="two words"`` on spaces outside quotes (quotes removed)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]
