"""LAN beacons on loopback for tests: a free UDP port for the group, a socket that multicasts like a neighbour."""
from __future__ import annotations

import socket


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def beacon_sender() -> socket.socket:
    """A socket that multicasts to the group on loopback only (TTL 1), as a LAN neighbour would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
