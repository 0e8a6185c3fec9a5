"""Outbound proxy settings: SOCKS5 or Tor's SOCKS port. Fails closed.

The proxy password is write-only: it lives in ``proxy.secret`` (0600) in the
node's home, is never logged, shown or returned; ``public_proxy`` reports
only ``password_set``.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import quote

from core.config import Settings, write_secret
from core.errors import ProxyUnreachable

SECRET_FILE = "proxy.secret"


def save_password(home: Path, password: str | None) -> None:
    path = home / SECRET_FILE
    if password:
        write_secret(path, password.encode())
    elif path.exists():
        path.unlink()


def read_password(home: Path) -> str:
    path = home / SECRET_FILE
    return path.read_text() if path.exists() else ""


def proxy_url(settings: Settings, password: str = "") -> str:
    host = settings.proxy_host or "127.0.0.1"
    port = settings.proxy_port or (9050 if settings.proxy_mode == "tor" else 1080)
    auth = ""
    if settings.proxy_user:
        auth = f"{quote(settings.proxy_user, safe='')}:{quote(password, safe='')}@"
    return f"socks5://{auth}{host}:{port}"


def public_proxy(home: Path, settings: Settings) -> dict:
    return {"mode": settings.proxy_mode, "host": settings.proxy_host or None,
            "port": settings.proxy_port or None, "user": settings.proxy_user or None,
            "password_set": (home / SECRET_FILE).exists(), "tor": None}


_SOCKS_REPLIES = {1: "general failure", 2: "connection not allowed by its rules",
                  3: "network unreachable", 4: "host unreachable", 5: "connection refused",
                  6: "TTL expired", 7: "command not supported", 8: "address type not supported"}


async def probe_socks5(host: str, port: int, user: str, password: str, target: tuple[str, int],
                       timeout: float = 10.0) -> None:
    """Greet the SOCKS5 proxy at host:port, log in if ``user`` is set, and CONNECT to ``target``.

    Raises ProxyUnreachable with the reason in words; returns when the proxy
    reached the target. The connection is closed either way (nothing is sent
    to the target)."""
    try:
        await asyncio.wait_for(_probe(host, port, user, password, target), timeout)
    except asyncio.TimeoutError:
        raise ProxyUnreachable(f"the proxy at {host}:{port} did not answer within {timeout:g} s") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        if isinstance(exc, asyncio.IncompleteReadError):
            reason = "it closed the connection"
        else:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ProxyUnreachable(f"the proxy at {host}:{port} cannot be used: {reason}") from None


async def _probe(host: str, port: int, user: str, password: str, target: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        methods = b"\x00\x02" if user else b"\x00"
        writer.write(b"\x05" + bytes([len(methods)]) + methods)
        version, method = await reader.readexactly(2)
        if version != 5:
            raise ProxyUnreachable(f"{host}:{port} is not a SOCKS5 proxy")
        if method == 0xFF:
            raise ProxyUnreachable(f"the proxy at {host}:{port} wants a user name and password"
                                   if not user else f"the proxy at {host}:{port} accepts none of our login methods")
        if method == 2:
            if not user:
                raise ProxyUnreachable(f"the proxy at {host}:{port} wants a user name and password")
            u, p = user.encode()[:255], password.encode()[:255]
            writer.write(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
            _, status = await reader.readexactly(2)
            if status != 0:
                raise ProxyUnreachable(f"the proxy at {host}:{port} refused the user name or password")
        elif method != 0:
            raise ProxyUnreachable(f"the proxy at {host}:{port} chose an unknown login method ({method})")
        name = target[0].encode()[:255]
        writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + target[1].to_bytes(2, "big"))
        _, reply, _, atyp = await reader.readexactly(4)
        if reply != 0:
            raise ProxyUnreachable(f"the proxy at {host}:{port} could not reach {target[0]}:{target[1]}: "
                                   f"{_SOCKS_REPLIES.get(reply, f'error {reply}')}")
        length = {1: 4, 4: 16}.get(atyp)
        await reader.readexactly((length if length else (await reader.readexactly(1))[0]) + 2)
    finally:
        writer.close()
