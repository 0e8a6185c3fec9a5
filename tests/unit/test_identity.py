"""Identity: signatures, fingerprints, key files, passphrases, damaged files."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat

import nacl.bindings
import nacl.pwhash
import pytest

from core.errors import (CorruptKeyFile, InvalidSignature, MalformedMessage, NoIdentity,
                         PassphraseRequired, WrongPassphrase)
from core.identity import (KEY_FILE, PUB_FILE, Identity, fingerprint_of, is_peer_id, verify,
                           x25519_public_of)

CHEAP = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def alice() -> Identity:
    return Identity.generate("alice")


# -- ids, signatures, fingerprints -------------------------------------------
def test_id_is_64_lowercase_hex_of_the_public_key(alice):
    assert is_peer_id(alice.id)
    assert bytes.fromhex(alice.id) == alice.public_bytes
    assert len(alice.public_bytes) == 32


@pytest.mark.parametrize("text", ["", "ab" * 31, "AB" * 32, "zz" * 32, "ab" * 33, None, 42])
def test_is_peer_id_rejects_anything_but_64_lowercase_hex(text):
    assert not is_peer_id(text)


def test_signature_round_trip(alice):
    sig = alice.sign(b"hello")
    assert len(sig) == 64
    verify(alice.id, b"hello", sig)  # does not raise


def test_tampered_message_is_rejected(alice):
    sig = alice.sign(b"pay 10")
    with pytest.raises(InvalidSignature):
        verify(alice.id, b"pay 99", sig)


def test_signature_from_another_key_is_rejected(alice):
    mallory = Identity.generate("mallory")
    with pytest.raises(InvalidSignature):
        verify(alice.id, b"hello", mallory.sign(b"hello"))


@pytest.mark.parametrize("peer_id, sig", [("nothex", b"\0" * 64), ("ab" * 32, b"short"),
                                          ("ab" * 32, "not bytes")])
def test_malformed_id_or_signature_is_an_invalid_signature(peer_id, sig):
    with pytest.raises(InvalidSignature):
        verify(peer_id, b"data", sig)


def test_fingerprint_is_sha256_prefix_in_eight_groups_of_four(alice):
    expected = hashlib.sha256(alice.public_bytes).hexdigest()[:32]
    groups = alice.fingerprint.split(" ")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    assert "".join(groups) == expected
    assert fingerprint_of(alice.id) == alice.fingerprint


def test_fingerprint_of_a_non_id_is_refused():
    with pytest.raises(MalformedMessage):
        fingerprint_of("xyz")


def test_x25519_keys_derived_from_identities_agree(alice):
    bob = Identity.generate("bob")
    ab = nacl.bindings.crypto_scalarmult(alice.x25519_private(), x25519_public_of(bob.id))
    ba = nacl.bindings.crypto_scalarmult(bob.x25519_private(), x25519_public_of(alice.id))
    assert ab == ba and len(ab) == 32
    assert nacl.bindings.crypto_scalarmult_base(alice.x25519_private()) == x25519_public_of(alice.id)


def test_repr_does_not_show_the_seed(alice):
    assert bytes(alice.signing_key).hex() not in repr(alice)


# -- key files ----------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path, alice):
    alice.save(tmp_path)
    loaded = Identity.load(tmp_path)
    assert loaded.id == alice.id and loaded.name == "alice"
    verify(alice.id, b"x", loaded.sign(b"x"))
    assert Identity.exists(tmp_path)


def test_key_file_is_0600_and_public_file_0644_whatever_the_umask(tmp_path, alice):
    old = os.umask(0)
    try:
        alice.save(tmp_path)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / KEY_FILE) == 0o600
    assert mode_of(tmp_path / PUB_FILE) == 0o644
    assert (tmp_path / PUB_FILE).read_text() == alice.id + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE, PUB_FILE]  # no temp files left


def test_unencrypted_key_file_has_the_documented_shape(tmp_path, alice):
    alice.save(tmp_path)
    doc = json.loads((tmp_path / KEY_FILE).read_text())
    assert doc == {"covey_key": 1, "name": "alice", "encrypted": False,
                   "seed": bytes(alice.signing_key).hex()}


def test_missing_identity_says_to_run_init(tmp_path):
    assert not Identity.exists(tmp_path)
    with pytest.raises(NoIdentity, match="covey init"):
        Identity.load(tmp_path)


def test_loose_key_file_mode_is_fixed_with_a_warning(tmp_path, alice, caplog):
    alice.save(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with caplog.at_level(logging.WARNING, logger="covey.identity"):
        assert Identity.load(tmp_path).id == alice.id
    assert mode_of(tmp_path / KEY_FILE) == 0o600
    assert "0600" in caplog.text


def test_missing_public_file_is_written_again(tmp_path, alice):
    alice.save(tmp_path)
    (tmp_path / PUB_FILE).unlink()
    Identity.load(tmp_path)
    assert (tmp_path / PUB_FILE).read_text() == alice.id + "\n"


# -- passphrases ----------------------------------------------------------------
def test_passphrase_round_trip_keeps_the_seed_off_disk(tmp_path, alice):
    alice.save(tmp_path, b"correct horse", **CHEAP)
    text = (tmp_path / KEY_FILE).read_text()
    assert bytes(alice.signing_key).hex() not in text
    doc = json.loads(text)
    assert doc["encrypted"] is True and doc["kdf"]["alg"] == "argon2id"
    assert Identity.load(tmp_path, b"correct horse").id == alice.id


def test_wrong_passphrase_is_refused(tmp_path, alice):
    alice.save(tmp_path, b"correct horse", **CHEAP)
    with pytest.raises(WrongPassphrase):
        Identity.load(tmp_path, b"battery staple")


def test_encrypted_key_without_passphrase_asks_for_one(tmp_path, alice):
    alice.save(tmp_path, b"correct horse", **CHEAP)
    with pytest.raises(PassphraseRequired):
        Identity.load(tmp_path)


def test_hostile_kdf_cost_in_a_key_file_is_refused_before_deriving(tmp_path, alice):
    alice.save(tmp_path, b"pw", **CHEAP)
    doc = json.loads((tmp_path / KEY_FILE).read_text())
    doc["kdf"]["memlimit"] = 1 << 40  # 1 TiB
    (tmp_path / KEY_FILE).write_text(json.dumps(doc))
    with pytest.raises(CorruptKeyFile, match="memlimit"):
        Identity.load(tmp_path, b"pw")


# -- damaged files ------------------------------------------------------------------
def _damage(tmp_path, alice, content: bytes):
    alice.save(tmp_path)
    (tmp_path / KEY_FILE).write_bytes(content)


@pytest.mark.parametrize("content", [
    os.urandom(200),                                            # garbage
    b'{"covey_key": 1, "name": "alice", "encrypted": fa',        # truncated JSON
    b'[1, 2, 3]',                                               # wrong shape
    b'{"covey_key": 1, "name": "alice", "encrypted": false, "seed": "zz"}',   # bad hex
    b'{"covey_key": 1, "name": "alice", "encrypted": false, "seed": "abcd"}',  # bad seed length
    b'{"covey_key": 7, "name": "alice", "encrypted": false, "seed": "00"}',    # unknown format
], ids=["garbage", "truncated-json", "wrong-shape", "bad-hex", "bad-seed-length", "unknown-format"])
def test_damaged_key_file_is_reported_with_what_to_do(tmp_path, alice, content):
    _damage(tmp_path, alice, content)
    with pytest.raises(CorruptKeyFile) as info:
        Identity.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / KEY_FILE) in message
    assert "backup" in message and "covey init" in message


def test_public_file_naming_another_key_is_reported(tmp_path, alice):
    alice.save(tmp_path)
    (tmp_path / PUB_FILE).write_text(Identity.generate("bob").id + "\n")
    with pytest.raises(CorruptKeyFile, match=PUB_FILE):
        Identity.load(tmp_path)


def test_sign_writes_the_signature_pynacl_writes():
    """Identity.sign calls libsodium at once (no SignedMessage): the same deterministic Ed25519
    signature as SigningKey.sign, which verify accepts, for empty, short and long messages."""
    ident = Identity.generate("s")
    for data in (b"", b"x", bytes(range(256)) * 40, bytearray(b"ba")):
        sig = ident.sign(data)
        assert sig == ident.signing_key.sign(bytes(data)).signature and len(sig) == 64
        verify(ident.id, data, sig)
