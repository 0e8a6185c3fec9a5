"""A real SOCKS5 proxy for tests: Debian's microsocks on 127.0.0.1 with user covey / password s3cret."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

needs_microsocks = pytest.mark.skipif(shutil.which("microsocks") is None,
                                      reason="microsocks not installed (make test installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def socks_proxy():
    """Start microsocks on a free loopback port; yields the port, stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", "covey", "-P", "s3cret"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)
