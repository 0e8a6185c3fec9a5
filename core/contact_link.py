"""Contact links: ``covey://HOST:PORT#ID``, one string (or QR code) that says where a node
listens and which key it must prove it holds.

HOST is an IPv4 address, a bracketed IPv6 address, a DNS name or a v3 onion name; ID is
the node's id (64 hex digits). Parsing is strict: anything else in the text is refused with
a sentence saying what is wrong, so a pasted or scanned link either names exactly one peer
or nothing.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import BadRequest
from .identity import is_peer_id

SCHEME = "covey://"
MAX_LINK = 320                      # the longest valid link is about 80 + 64 characters
_ONION = re.compile(r"[a-z2-7]{56}\.onion")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
LOOPBACK = ("127.", "[::1]", "localhost")


@dataclass(frozen=True)
class ContactLink:
    """A checked contact link: where the peer listens and its id."""
    address: str        # host:port or [v6]:port, the host in lower case
    peer_id: str        # 64 lowercase hex digits

    def __str__(self) -> str:
        return f"{SCHEME}{self.address}#{self.peer_id}"


def contact_link(address: str, peer_id: str) -> str:
    """The link for a node at ``address`` (HOST:PORT) with id ``peer_id``; BadRequest if either is wrong."""
    return str(ContactLink(check_address(address), _check_id(peer_id)))


def best_addresses(listen: list[str], onion: str | None = None) -> list[str]:
    """The addresses worth putting in a link, best first: the onion address, then network
    addresses, then loopback (reachable from this machine only). Ones a peer could not
    dial (port 0, 0.0.0.0) are left out."""
    ordered = ([onion] if onion else []) + sorted(listen, key=lambda a: a.startswith(LOOPBACK))
    found = []
    for address in ordered:
        try:
            found.append(check_address(address))
        except BadRequest:
            continue
    return list(dict.fromkeys(found))


def looks_like_link(text: str) -> bool:
    """True if ``text`` is meant as a contact link (it starts with ``covey://``), valid or not."""
    return isinstance(text, str) and text.strip()[:len(SCHEME)].lower() == SCHEME


def parse_contact_link(text: str) -> ContactLink:
    """The peer a contact link names; BadRequest saying what is wrong with anything else."""
    if not isinstance(text, str):
        raise BadRequest("a contact link is text")
    text = text.strip()
    if len(text) > MAX_LINK:
        raise BadRequest(f"not a contact link: it is longer than {MAX_LINK} characters")
    if not looks_like_link(text):
        raise BadRequest(f"not a contact link: it must start with {SCHEME}")
    rest = text[len(SCHEME):]
    address, sep, peer_id = rest.partition("#")
    if not sep:
        raise BadRequest("not a contact link: the node's id is missing after '#'")
    return ContactLink(check_address(address), _check_id(peer_id))


def check_address(address: str) -> str:
    """``address`` as HOST:PORT that a peer can dial (host lower-cased); BadRequest otherwise."""
    if not isinstance(address, str) or not address:
        raise BadRequest("the contact link has no address (HOST:PORT)")
    if any(c in address for c in "/?@# \t\r\n"):
        raise BadRequest(f"the address {address[:80]!r} must be just HOST:PORT")
    if address.startswith("["):
        inside, bracket, port = address[1:].partition("]")
        if not bracket or not port.startswith(":"):
            raise BadRequest(f"the address {address[:80]!r} must be [IPv6]:PORT")
        host, port = inside, port[1:]
        _check_ipv6(host)
        shown = f"[{ipaddress.IPv6Address(host).compressed}]"
    else:
        host, colon, port = address.rpartition(":")
        if not colon or not host:
            raise BadRequest(f"the address {address[:80]!r} must be HOST:PORT (for example 192.168.1.20:8102)")
        shown = _check_host(host.lower())
    return f"{shown}:{_check_port(port)}"


def _check_port(port: str) -> int:
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise BadRequest(f"the port {port[:10]!r} must be a number from 1 to 65535")
    return int(port)


def _check_ipv6(host: str) -> None:
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        raise BadRequest(f"{host[:60]!r} is not an IPv6 address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise BadRequest(f"{host} is not an address a peer can connect to")


def _check_host(host: str) -> str:
    """An IPv4 address, a v3 onion name or a DNS name."""
    if ":" in host:
        raise BadRequest(f"the IPv6 address {host[:60]!r} must be written in brackets: [{host[:60]}]:PORT")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise BadRequest(f"{host[:60]!r} is not an IPv4 address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise BadRequest(f"{host} is not an address a peer can connect to")
        return host
    if host.endswith(".onion"):
        if not _ONION.fullmatch(host):
            raise BadRequest(f"{host[:80]!r} is not an onion address (56 letters and digits 2-7, then .onion)")
        return host
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadRequest(f"{host[:80]!r} is not a host name")
    return host


def _check_id(peer_id: str) -> str:
    peer_id = peer_id.lower() if isinstance(peer_id, str) else ""
    if not is_peer_id(peer_id):
        raise BadRequest("the node's id in a contact link must be 64 hex digits")
    return peer_id
