"""Local control API: HTTP over a Unix socket in the home (POSIX), with a bearer token.

``POST /v1/<command>`` with a JSON object of arguments runs one command
that :func:`core.app.commands.load_commands` collects; the answer is ``{"result": ...}`` or
``{"error": {"code", "message"}}``. Where the server listens (``socket``, or
``url`` on the TCP fallback), the token and the server's pid are written to
``control.json`` (mode 0600) in the node's home, and removed on shutdown.

Why a Unix socket: a TCP port on 127.0.0.1 left behind by a crashed node can be
taken by any local process, which would then receive the token from the next
`covey` command. The socket lives in the 0700 home (only its owner can reach
it) and the client checks with the kernel (SO_PEERCRED) that the process it
reached is the pid named in control.json. Where Unix sockets are missing
(Windows) the server listens on 127.0.0.1 and the client checks that the pid
is alive and is the one listening on that port.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import tempfile
from pathlib import Path

from aiohttp import web

from core.app.commands import load_commands
from core.config import write_secret
from core.files import private_dir
from core.errors import BadRequest, CoveyError, MessageTooLarge, Unauthorized, human

log = logging.getLogger("covey.control")

CONTROL_FILE = "control.json"
SOCKET_FILE = "control.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 104-108 bytes depending on the OS
MAX_BODY = 64 * 1024
# The HTTP status of each error code (a code not listed takes its parent error's; else 400).
# The message is core.errors.human's, the same sentence the CLI and the GUI show.
STATUS = {"too_large": 413, "bad_request": 400, "malformed": 400, "unauthorized": 401, "unknown_peer": 404,
          "refused_by_policy": 403, "banned": 403, "ambiguous_peer": 409, "timeout": 504,
          "unreachable": 502, "proxy_unreachable": 502, "key_mismatch": 502,
          "mode_mismatch": 502, "network_key_mismatch": 502, "handshake_failed": 502}


class ControlServer:
    """Serves the node's commands to local clients holding the token."""

    def __init__(self, node, host: str = "127.0.0.1", port: int = 0, *, unix: bool | None = None):
        self.node = node
        self.host, self.port = host, port
        self.unix = unix_sockets() if unix is None else unix
        self.socket_path: Path | None = None
        self.token = secrets.token_hex(32)
        self.commands = load_commands()
        self._runner: web.AppRunner | None = None

    @property
    def path(self) -> Path:
        return self.node.home / CONTROL_FILE

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/{name}", self._handle)
        app.router.add_get("/v1/events", self._events)
        self._runner = runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                              shutdown_timeout=0.2)
        await runner.setup()
        site: web.BaseSite
        if self.unix:
            self.socket_path = socket_path(self.node.home)
            site = web.UnixSite(runner, str(self.socket_path))
            await site.start()
            os.chmod(self.socket_path, 0o600)
            where = {"socket": str(self.socket_path)}
        else:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]   # the one site's first socket (the port chosen for 0)
            where = {"url": f"http://{self.host}:{self.port}"}
        write_secret(self.path, json.dumps({**where, "token": self.token, "pid": os.getpid()}).encode())

    @property
    def endpoint(self) -> str:
        """Where local clients reach this server (the Unix socket, or the TCP URL)."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        try:
            current = json.loads(self.path.read_text())
            if current.get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError) as exc:
            log.debug("control file not removed: %s", exc)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing control token (the node's control.json holds it)")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            raise Unauthorized("wrong control token (is it from another node's home?)")

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
            command = self.commands.get(request.match_info["name"])
            if command is None:
                raise BadRequest(f"unknown command {request.match_info['name']!r}")
            body = await _read_body(request, getattr(command.run, "max_body", MAX_BODY), command.name)
            try:
                args = json.loads(body) if body else {}
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("request body is not valid JSON") from None
            result = await command.run(self.node, **command.validate(args))
            return web.json_response({"result": result})
        except CoveyError as exc:
            return _error(http_status(exc), exc.code, human(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", "request body too large")
        except Exception as exc:  # a bug must answer, not hang the CLI
            log.exception("control command failed")
            return _error(500, "internal", human(exc))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent stream of core events as JSON lines (for tools and tests)."""
        try:
            self._authorize(request)
        except CoveyError as exc:
            return _error(401, exc.code, human(exc))
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue = self.node.events.subscribe()
        try:
            while True:
                event = await queue.get()
                line = json.dumps({"event": event.name, "at": event.at, **event.data}, default=str)
                await response.write(line.encode() + b"\n")
        except (ConnectionError, RuntimeError):
            return response
        finally:
            self.node.events.unsubscribe(queue)


async def _read_body(request: web.Request, limit: int, name: str) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit``: a command declares a larger
    limit than MAX_BODY with a ``max_body`` attribute (knowledge.publish carries a file)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise MessageTooLarge(f"request body of {declared} bytes is above the limit of {limit} for {name}")
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > limit:
            raise MessageTooLarge(f"request body is above the limit of {limit} bytes for {name}")
    return bytes(data)


def http_status(exc: CoveyError) -> int:
    """The HTTP status for a typed error: its code's, else the nearest parent error's, else 400."""
    for klass in type(exc).__mro__:
        code = exc.code if klass is type(exc) else getattr(klass, "code", None)
        if code in STATUS:
            return STATUS[code]
    return 400


def unix_sockets() -> bool:
    """Whether the control API can use a Unix socket here (POSIX; not Windows)."""
    return os.name == "posix" and hasattr(socket, "AF_UNIX")


def socket_path(home: Path) -> Path:
    """``home/control.sock``; for a home whose path is too long for a socket address, a
    0700 directory of this user's in the temp dir (checked: owned by us, nobody else's)."""
    path = Path(home).resolve() / SOCKET_FILE
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    directory = Path(tempfile.gettempdir()) / f"covey-{os.getuid()}"
    if directory.is_symlink() or (directory.exists() and directory.lstat().st_uid != os.getuid()):
        raise BadRequest(f"{directory} is not a private directory of this user; remove it")
    private_dir(directory)
    return directory / (hashlib.sha256(os.fsencode(path)).hexdigest()[:24] + ".sock")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
