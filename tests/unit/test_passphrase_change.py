"""Setting and changing the passphrase of a node's identity key file."""
from __future__ import annotations

import asyncio

import nacl.pwhash
import pytest

import core.identity
from core.config import Settings
from core.errors import BadRequest, PassphraseRequired, WrongPassphrase
from core.identity import KEY_FILE, Identity
from core.node import Node


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch):
    monkeypatch.setattr(core.identity, "KDF_OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(core.identity, "KDF_MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)


def test_setting_then_changing_the_passphrase(tmp_path):
    alice = Identity.generate("alice")
    alice.save(tmp_path)
    assert not Identity.load(tmp_path).protected
    alice.change_passphrase(tmp_path, None, b"first")
    assert alice.protected
    with pytest.raises(PassphraseRequired):
        Identity.load(tmp_path)
    assert Identity.load(tmp_path, b"first").protected

    with pytest.raises(PassphraseRequired, match="current passphrase"):
        alice.change_passphrase(tmp_path, None, b"second")
    before = (tmp_path / KEY_FILE).read_bytes()
    with pytest.raises(WrongPassphrase, match="nothing was changed"):
        alice.change_passphrase(tmp_path, b"wrong", b"second")
    assert (tmp_path / KEY_FILE).read_bytes() == before

    alice.change_passphrase(tmp_path, b"first", b"second")
    assert Identity.load(tmp_path, b"second").id == alice.id
    with pytest.raises(WrongPassphrase):
        Identity.load(tmp_path, b"first")


def test_an_empty_new_passphrase_is_refused(tmp_path):
    alice = Identity.generate("alice")
    alice.save(tmp_path)
    with pytest.raises(BadRequest, match="cannot be empty"):
        alice.change_passphrase(tmp_path, None, b"")
    assert not Identity.load(tmp_path).protected


def test_the_node_changes_it_off_the_loop_and_announces_it(tmp_path):
    identity = Identity.generate("bob")
    identity.save(tmp_path)
    node = Node(tmp_path, identity, Settings(listen="127.0.0.1:0", discovery=False))
    seen = []
    node.events.on("settings_changed", lambda event: seen.append(event.data["changes"]))

    async def change() -> dict:
        return await node.set_passphrase(None, "é-secret")
    assert asyncio.run(change()) == {"protected": True}
    assert Identity.load(tmp_path, "é-secret".encode()).id == identity.id
    assert seen == [["passphrase"]]
