"""A node's Ed25519 identity: key files, passphrase protection, fingerprints.

The peer id is the hex of the 32-byte Ed25519 public key. The private key
lives in ``<home>/identity.key`` (mode 0600, JSON, optionally encrypted with
Argon2id + SecretBox); ``<home>/identity.pub`` (0644) holds the hex id.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import stat
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from core.files import private_dir, write_atomic
from core.errors import (BadRequest, CorruptKeyFile, InvalidSignature, MalformedMessage, NoIdentity,
                         PassphraseRequired, WrongPassphrase)

log = logging.getLogger("covey.identity")

KEY_FILE = "identity.key"
PUB_FILE = "identity.pub"
KEY_FORMAT = 1

# Argon2id cost for passphrase-protected keys. Production uses MODERATE
# (~256 MiB); tests pass cheaper values to ``save``.
KDF_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
KDF_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
# Bounds accepted when reading a key file, so a damaged or hostile file cannot
# make the node spend unbounded memory or time deriving a key.
_OPSLIMIT_RANGE = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE)
_MEMLIMIT_RANGE = (nacl.pwhash.argon2id.MEMLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE)

_PEER_ID = re.compile(r"[0-9a-f]{64}")
_SEED_BYTES = 32
SIGNATURE_BYTES = nacl.bindings.crypto_sign_BYTES
_MAX_KEY_FILE = 64 * 1024


def is_peer_id(text: str) -> bool:
    """True if ``text`` is a peer id: 64 lowercase hex digits."""
    return isinstance(text, str) and _PEER_ID.fullmatch(text) is not None


def _public_bytes(peer_id: str) -> bytes:
    if not is_peer_id(peer_id):
        raise MalformedMessage(f"not a peer id (expected 64 lowercase hex digits): {peer_id!r:.80}")
    return bytes.fromhex(peer_id)


def fingerprint_of(peer_id: str) -> str:
    """Short human-comparable form of a peer id: 32 hex digits of SHA-256 in groups of 4."""
    digest = hashlib.sha256(_public_bytes(peer_id)).hexdigest()[:32]
    return " ".join(digest[i:i + 4] for i in range(0, 32, 4))


def verify(peer_id: str, data: bytes, signature: bytes) -> None:
    """Check a detached Ed25519 signature; raise InvalidSignature if it does not verify.

    A malformed peer id or signature is reported as InvalidSignature too: to a
    receiver it is just a message whose signature does not check out.
    """
    key = _verify_key(peer_id) if type(peer_id) is str and len(peer_id) == 64 else None
    if key is None:
        raise InvalidSignature("invalid signature: the signer is not a valid peer id")
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
        raise InvalidSignature("invalid signature: a signature is 64 bytes")
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidSignature("invalid signature: signed data must be bytes")
    try:
        key.verify(bytes(data), bytes(signature))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError, nacl.exceptions.RuntimeError) as exc:
        raise InvalidSignature(f"invalid signature from peer {peer_id[:16]}") from exc


@functools.lru_cache(maxsize=256)   # the peers a node hears from: no id parsed and key made per message
def _verify_key(peer_id: str) -> nacl.signing.VerifyKey | None:
    """The verify key of a peer id (64 characters), None if it is not one."""
    if not is_peer_id(peer_id):
        return None
    try:
        return nacl.signing.VerifyKey(bytes.fromhex(peer_id))
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return None


def x25519_public_of(peer_id: str) -> bytes:
    """The X25519 public key matching a peer's Ed25519 key (for key agreement)."""
    try:
        return bytes(nacl.signing.VerifyKey(_public_bytes(peer_id)).to_curve25519_public_key())
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise MalformedMessage(f"peer id {peer_id[:16]}... is not a valid Ed25519 public key") from exc


class Identity:
    """This node's signing key and display name."""

    def __init__(self, signing_key: nacl.signing.SigningKey, name: str = ""):
        self.signing_key = signing_key
        self.name = name
        self.public_bytes: bytes = bytes(signing_key.verify_key)
        self._id = self.public_bytes.hex()   # read on every signature made and checked: made once
        # libsodium's 64-byte secret key, for signing without SigningKey.sign's three copies of the
        # signed message and its SignedMessage object (a few us of every signature made)
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(signing_key))[1]
        self.protected = False      # whether its key file is encrypted with a passphrase (load/save set it)

    def __repr__(self) -> str:  # never show the seed
        return f"Identity(name={self.name!r}, id={self.id[:16]}...)"

    @property
    def id(self) -> str:
        """Hex of the Ed25519 public key (64 hex digits)."""
        return self._id

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.id)

    def sign(self, data: bytes) -> bytes:
        """A 64-byte detached Ed25519 signature over ``data``."""
        return nacl.bindings.crypto_sign(bytes(data), self._secret)[:SIGNATURE_BYTES]

    def x25519_private(self) -> bytes:
        """The 32-byte X25519 private key derived from the Ed25519 key."""
        return bytes(self.signing_key.to_curve25519_private_key())

    @classmethod
    def generate(cls, name: str) -> "Identity":
        """A fresh random identity."""
        return cls(nacl.signing.SigningKey.generate(), name)

    @classmethod
    def from_seed(cls, seed: bytes, name: str = "") -> "Identity":
        """The identity whose Ed25519 seed is ``seed`` (32 bytes)."""
        return cls(nacl.signing.SigningKey(bytes(seed)), name)

    # -- files -----------------------------------------------------------
    @staticmethod
    def exists(home: Path) -> bool:
        """True if ``home`` holds an identity key file."""
        return (Path(home) / KEY_FILE).exists()

    def save(self, home: Path, passphrase: bytes | None = None, *,
             opslimit: int | None = None, memlimit: int | None = None) -> None:
        """Write ``identity.key`` (0600, atomically) and ``identity.pub`` (0644) into ``home``.

        With a passphrase the seed is encrypted with a key derived by Argon2id;
        ``opslimit``/``memlimit`` override the module defaults (tests use cheap ones).
        """
        home = Path(home)
        private_dir(home)
        seed = bytes(self.signing_key)
        doc: dict = {"covey_key": KEY_FORMAT, "name": self.name}
        if passphrase is None:
            doc.update(encrypted=False, seed=seed.hex())
        else:
            ops = KDF_OPSLIMIT if opslimit is None else opslimit
            mem = KDF_MEMLIMIT if memlimit is None else memlimit
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            key = _derive(_as_bytes(passphrase), salt, ops, mem)
            box = nacl.secret.SecretBox(key).encrypt(seed)
            doc.update(encrypted=True,
                       kdf={"alg": "argon2id", "salt": salt.hex(), "opslimit": ops, "memlimit": mem},
                       box=bytes(box).hex())
        write_atomic(home / KEY_FILE, (json.dumps(doc, indent=1) + "\n").encode(), 0o600)
        write_atomic(home / PUB_FILE, (self.id + "\n").encode(), 0o644)
        self.protected = passphrase is not None

    @classmethod
    def load(cls, home: Path, passphrase: bytes | None = None) -> "Identity":
        """Read the identity of ``home``; see the module docstring for the files and errors."""
        home = Path(home)
        path = home / KEY_FILE
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                log.warning("identity key %s had mode %o (readable by others); setting it to 0600",
                            path, mode)
                try:
                    os.chmod(path, 0o600)
                except PermissionError as exc:
                    log.warning("could not restrict %s to 0600: %s", path, exc)
            with open(path, "rb") as f:
                raw = f.read(_MAX_KEY_FILE + 1)
        except FileNotFoundError:
            raise NoIdentity(f"no identity in {home}: run `covey init` first") from None
        if len(raw) > _MAX_KEY_FILE:
            raise _corrupt(path, "it is far larger than a key file")
        doc = _parse(path, raw)
        identity = cls(nacl.signing.SigningKey(_seed_from(path, doc, passphrase)), doc["name"])
        identity.protected = doc["encrypted"]
        _check_pub(home / PUB_FILE, identity)
        return identity

    def change_passphrase(self, home: Path, old: bytes | None, new: bytes) -> None:
        """Encrypt the key file of ``home`` with ``new``. When it is protected now, ``old``
        must unlock it (WrongPassphrase / PassphraseRequired otherwise); nothing is written
        unless it does. Slow by design (Argon2id): call it off the event loop."""
        if not new:
            raise BadRequest("the new passphrase cannot be empty")
        if self.protected:
            if not old:
                raise PassphraseRequired("give the current passphrase to change it")
            try:
                current = Identity.load(home, old)
            except WrongPassphrase:
                raise WrongPassphrase("the current passphrase is not the right one: nothing was changed") from None
            if current.id != self.id:
                raise CorruptKeyFile(f"the key file in {home} is not this node's key", path=str(home))
        self.save(home, new)


def ensure_identity(home: Path, name: str = "", passphrase: bytes | None = None) -> tuple[Identity, bool]:
    """The identity of ``home``, created (named ``name``, protected by ``passphrase`` if
    given) when it has none: ``(identity, created)``. The one place an identity is made;
    the home is created (or restricted) 0700 first."""
    home = Path(home)
    private_dir(home)
    if Identity.exists(home):
        return Identity.load(home, passphrase), False
    identity = Identity.generate(name or "")
    identity.save(home, passphrase)
    log.info("created identity %s in %s", identity.id, home)
    return identity, True


def _as_bytes(passphrase: bytes | str) -> bytes:
    return passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                                    opslimit=opslimit, memlimit=memlimit)


def _corrupt(path: Path, why: str) -> CorruptKeyFile:
    return CorruptKeyFile(
        f"the identity key file {path} is damaged ({why}); restore it from a backup, "
        f"or run `covey init` with a new home (that creates a new identity)", path=str(path))


def _parse(path: Path, raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupt(path, "not valid JSON") from None
    if not isinstance(doc, dict) or "covey_key" not in doc:
        raise _corrupt(path, "not a Covey key file")
    if doc["covey_key"] != KEY_FORMAT:
        raise _corrupt(path, f"unknown key file format {doc['covey_key']!r}; "
                             f"it may come from a newer Covey")
    if not isinstance(doc.get("name"), str):
        raise _corrupt(path, "the name is missing")
    if not isinstance(doc.get("encrypted"), bool):
        raise _corrupt(path, "the 'encrypted' flag is missing")
    return doc


def _hex_field(path: Path, doc: dict, key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise _corrupt(path, f"'{key}' is missing")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _corrupt(path, f"'{key}' is not hex") from None


def _seed_from(path: Path, doc: dict, passphrase: bytes | None) -> bytes:
    if not doc["encrypted"]:
        seed = _hex_field(path, doc, "seed")
    else:
        seed = _decrypt_seed(path, doc, passphrase)
    if len(seed) != _SEED_BYTES:
        raise _corrupt(path, f"the key seed is {len(seed)} bytes, not {_SEED_BYTES}")
    return seed


def _bounded_int(path: Path, doc: dict, key: str, bounds: tuple[int, int]) -> int:
    value, (low, high) = doc.get(key), bounds
    if type(value) is not int or not low <= value <= high:
        raise _corrupt(path, f"{key} {value!r} is out of range")
    return value


def _decrypt_seed(path: Path, doc: dict, passphrase: bytes | None) -> bytes:
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("alg") != "argon2id":
        raise _corrupt(path, "the key derivation parameters are missing or unknown")
    salt = _hex_field(path, kdf, "salt")
    if len(salt) != nacl.pwhash.argon2id.SALTBYTES:
        raise _corrupt(path, "the salt has the wrong length")
    ops = _bounded_int(path, kdf, "opslimit", _OPSLIMIT_RANGE)
    mem = _bounded_int(path, kdf, "memlimit", _MEMLIMIT_RANGE)
    box = _hex_field(path, doc, "box")
    if len(box) != nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + _SEED_BYTES:
        raise _corrupt(path, "the encrypted seed has the wrong length")
    if passphrase is None:
        raise PassphraseRequired(
            f"the identity key {path} is protected by a passphrase: give it with "
            f"--passphrase-file or COVEY_PASSPHRASE")
    key = _derive(_as_bytes(passphrase), salt, ops, mem)
    try:
        return nacl.secret.SecretBox(key).decrypt(box)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"the passphrase does not unlock the identity key {path}") from None


def _check_pub(pub_path: Path, identity: Identity) -> None:
    try:
        text = pub_path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        log.info("%s is missing; writing it again from the key", pub_path)
        try:
            write_atomic(pub_path, (identity.id + "\n").encode(), 0o644)
        except OSError as exc:
            log.warning("could not write %s: %s", pub_path, exc)
        return
    if text != identity.id:
        raise CorruptKeyFile(
            f"{pub_path} names a different key than {pub_path.with_name(KEY_FILE)} "
            f"({text[:16]}... vs {identity.id[:16]}...); the files were mixed up: restore the "
            f"pair from a backup, or run `covey init` with a new home", path=str(pub_path))
