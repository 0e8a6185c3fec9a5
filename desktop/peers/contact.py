"""Contact links for the Trust tab: read one a person copied, make ours (core.contact_link does both)."""
from __future__ import annotations

LOOPBACK = ("127.", "[::1]", "localhost")


def parse(text: str) -> tuple[str, str]:
    """(address, peer id) of a ``covey://ADDRESS#ID`` link; BadRequest saying what is wrong."""
    from core.contact_link import parse_contact_link
    link = parse_contact_link(text)
    return link.address, link.peer_id


def ours(node) -> str:
    """This node's link: its onion address when Tor publishes one, else the first address
    another machine can dial (loopback only when there is nothing else)."""
    from core.contact_link import contact_link
    info = node.info()
    listen = sorted(info["listen"], key=lambda a: a.startswith(LOOPBACK))
    address = info["onion"] or listen[0]
    return contact_link(address, node.identity.id)
