"""Contact links for the Trust tab: read one a person copied, and ours (the node's info holds it)."""
from __future__ import annotations

from core.contact_link import parse_contact_link
from core.errors import BadRequest


def parse(text: str) -> tuple[str, str]:
    """(address, peer id) of a ``covey://ADDRESS#ID`` link; BadRequest saying what is wrong."""
    link = parse_contact_link(text)
    return link.address, link.peer_id


def ours(node) -> str:
    """This node's link (onion first, then a network address, then loopback: ``node.info()``)."""
    link = node.info().get("link")
    if not link:
        raise BadRequest("this node has no address a peer could dial yet")
    return link
