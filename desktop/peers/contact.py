"""Contact links for the Trust tab: read one a person copied, make ours (core.contact_link does both)."""
from __future__ import annotations

from core.contact_link import contact_link, parse_contact_link


def parse(text: str) -> tuple[str, str]:
    """(address, peer id) of a ``covey://ADDRESS#ID`` link; BadRequest saying what is wrong."""
    link = parse_contact_link(text)
    return link.address, link.peer_id


def ours(node) -> str:
    """This node's link: its onion address when Tor publishes one, else the first address
    another machine can dial (loopback only when there is nothing else)."""
    info = node.info()
    listen = info["listen"]
    outside = [a for a in listen if not a.startswith(("127.", "[::1]", "localhost"))]
    address = info["onion"] or (outside or listen)[0]
    return contact_link(address, node.identity.id)
