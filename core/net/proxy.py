"""Outbound proxy settings: SOCKS5 or Tor's SOCKS port. Fails closed.

The proxy password is write-only: it lives in ``proxy.secret`` (0600) in the
node's home, is never logged, shown or returned; ``public_proxy`` reports
only ``password_set``.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from core.config import Settings, write_secret

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
