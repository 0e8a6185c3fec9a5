"""Adding a peer by its contact link (covey://HOST:PORT#ID), as `covey peers add LINK` and the
control API do: the link's id is pinned, so another key at that address is refused."""
from __future__ import annotations

import pytest

from core.app.commands import load_commands
from core.errors import BadRequest, KeyMismatch
from core.identity import Identity

from .conftest import address


async def test_a_node_shows_its_link_and_a_peer_adds_it_by_the_link(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    link = alice.info()["link"]
    assert link == f"covey://{address(alice)}#{alice.identity.id}"
    view = await bob.add_peer(link)
    assert view["id"] == alice.identity.id and view["connected"] and view["address"] == address(alice)
    assert bob.peers.get(alice.identity.id).pinned


async def test_the_command_takes_a_link_too(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    command = load_commands()["peers.add"]
    view = await command.run(bob, **command.validate({"address": alice.info()["link"]}))
    assert view["id"] == alice.identity.id


async def test_a_link_whose_id_another_node_answers_for_is_refused_and_nothing_is_saved(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    mallory = Identity.generate("mallory").id
    with pytest.raises(KeyMismatch):
        await bob.add_peer(f"covey://{address(alice)}#{mallory}")
    assert bob.peers.get(mallory) is None and bob.peers.get(alice.identity.id) is None


async def test_a_bad_link_or_a_link_with_another_key_is_refused_in_words(make_node):
    alice, bob = await make_node("alice"), await make_node("bob")
    with pytest.raises(BadRequest, match="64 hex digits"):
        await bob.add_peer(f"covey://{address(alice)}#abc")
    with pytest.raises(BadRequest, match="not the id in the contact link"):
        await bob.add_peer(alice.info()["link"], key=Identity.generate("x").id)
    assert bob.peers.list() == []
