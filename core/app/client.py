"""The control API's client: run one command on the node of a home, from another process.

The CLI, `covey cluster` and `covey demo` use it (and never each other). The
token in ``control.json`` goes out only after the listener is shown to be the
live node that wrote it (its pid, by SO_PEERCRED on the Unix socket).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import CoveyError, NotRunning, from_code


def call(home: Path, name: str, args: dict, timeout: float = 60.0):
    """Run one command on the node of ``home`` through its control API."""
    status, body = control_request(home, f"/v1/{name}", json.dumps(args).encode(), timeout=timeout)
    if status == 200 and isinstance(body, dict) and "result" in body:
        return body["result"]
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        raise CoveyError(f"the node answered HTTP {status}")
    raise from_code(err.get("code", "error"), err.get("message", "error"))


def control_request(home: Path, path: str, data: bytes, *, token: str | None = "",
                    timeout: float = 60.0) -> tuple[int, Any]:
    """POST ``data`` to ``path`` of the node's control API -> (HTTP status, parsed JSON body).

    ``token``: "" sends the one from control.json, None sends none (for tests of refusals).
    The token goes out only after the listener is shown to be the node that wrote control.json.
    """
    control_file = home / "control.json"
    try:
        control = json.loads(control_file.read_text())
        if not isinstance(control, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        raise NotRunning(f"no node is running with home {home}: start one with "
                         f"`covey --home {home} --headless`") from None
    except (OSError, ValueError):
        raise NotRunning(f"{control_file} is unreadable; restart the node") from None
    conn = _control_connection(home, control, timeout)
    headers = {"Content-Type": "application/json"}
    token = control.get("token", "") if token == "" else token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except OSError:
        raise NotRunning(f"the node of {home} stopped answering; start it again") from None
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, None


def _control_connection(home: Path, control: dict, timeout: float):
    """An HTTP connection to the control API, opened only to the live node named in control.json.

    After a crash the file is stale: its socket path or port may belong to another local
    process by now, and that one must not receive the token.
    """
    import http.client
    stale = NotRunning(f"the node of {home} is not running (stale {home / 'control.json'}); start it again")
    pid = control.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not _alive(pid):
        raise stale
    if isinstance(control.get("socket"), str):
        import socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(control["socket"])
            if _peer_pid(sock) not in (pid, None):
                raise stale
        except OSError:
            sock.close()
            raise stale from None
        except NotRunning:
            sock.close()
            raise
        conn = http.client.HTTPConnection("localhost", timeout=timeout)
        conn.sock = sock
        return conn
    from urllib.parse import urlsplit
    try:
        url = urlsplit(str(control.get("url", "")))
        host, port = url.hostname, url.port
    except ValueError:
        raise stale from None
    if host != "127.0.0.1" or not port or not _listens(pid, port):
        raise stale
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _alive(pid: int) -> bool:
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _peer_pid(sock) -> int | None:
    """The pid of the process at the other end of a Unix socket (Linux; None where unknown)."""
    import socket
    import struct
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    peer_pid, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        return -1  # another user's process: never ours
    return peer_pid


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` listens on TCP ``port`` (the TCP fallback's server check)."""
    import psutil
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)
