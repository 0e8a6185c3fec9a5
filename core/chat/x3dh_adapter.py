"""X3DH key agreement on the node's Ed25519 identity (the ``x3dh`` package).

:class:`ChatKeys` owns this node's X3DH state: the identity is the node's own
Ed25519 seed (no second identity to manage), plus a signed prekey (rotated
weekly; the previous one is kept for one more period) and a pool of one-time
prekeys. Only the private halves of the prekeys are persisted, in
``<home>/chat_prekeys.json`` (0600), so a node that was shut down can still open
an initial message that waited for it; the identity seed is never copied there.

A bundle is handed out per peer (:meth:`ChatKeys.bundle_for`): each carries
one one-time prekey reserved for that peer, so two peers never race for the
same prekey, and it is sealed in the node's signed envelope naming the peer it
is for. A one-time prekey is deleted only after a message that used it
decrypted, so a tampered copy cannot burn it; a replayed initial message then
finds it gone.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, NamedTuple

import x3dh
import xeddsa
from x3dh.identity_key_pair import IdentityKeyPairSeed
from x3dh.pre_key_pair import PreKeyPair
from x3dh.types import SecretType

from core.config import write_secret
from core.errors import InvalidSignature, MalformedMessage
from core.identity import is_peer_id
from core.signed import seal, verify_only
from core.chat.errors import BadBundle, CorruptPrekeyFile, KeyAgreementFailed, PrekeysExhausted

log = logging.getLogger("covey.chat.x3dh")

PREKEY_FILE = "chat_prekeys.json"
FILE_FORMAT = 1
BUNDLE_KIND = "chat-bundle"
INFO = b"covey/v1/chat/x3dh"
HASH = x3dh.HashFunction.SHA_512
KEY_FORMAT = x3dh.IdentityKeyFormat.ED_25519
ROTATION_PERIOD = 7 * 24 * 3600
PREKEY_TARGET = 100       # one-time prekeys kept ready
PREKEY_CAP = 1000         # hard bound on one-time prekeys held (and on the file)
_MAX_FILE = 256 * 1024
_KEY_TAGS = {x3dh.IdentityKeyFormat.CURVE_25519: b"\x05", x3dh.IdentityKeyFormat.ED_25519: b"\x06"}
_BUNDLE_FIELDS = frozenset({"for", "ik", "spk", "spk_sig", "opk"})


def encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
    """Type tag + raw key, so a Curve25519 and an Ed25519 key never encode alike."""
    return _KEY_TAGS[key_format] + pub


class Bundle(NamedTuple):
    """A verified prekey bundle of ``peer`` (addressed to us), with the signed envelope it came in."""
    peer: str
    x3dh: x3dh.Bundle
    envelope: dict | None = None


class _State(x3dh.State):
    """The library's self-managing X3DH state, told how to encode keys and whom to notify."""

    _on_publish: Callable[[], None] | None = None  # set by ChatKeys once the state is built

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return encode_public_key(key_format, pub)

    def _publish_bundle(self, bundle: x3dh.Bundle) -> None:
        # Called on creation, rotation and prekey refill; ChatKeys persists the
        # private halves and bumps its version so the service republishes.
        if self._on_publish is not None:
            self._on_publish()

    def prekeys(self) -> dict[bytes, bytes]:
        """One-time prekeys, private -> public half (memoised: deriving them is the slow part)."""
        memo = getattr(self, "_memo", {})
        self._memo = {priv: memo.get(priv) or PreKeyPair(priv).pub for priv in self.model.pre_keys}
        return self._memo

    @property
    def bundle(self) -> x3dh.Bundle:
        # Same value as the library's property, which re-derives all ~100
        # one-time public keys on every access (several per key agreement).
        model = self.model
        if model.identity_key.secret_type is not SecretType.SEED:
            return super().bundle
        spk = model.signed_pre_key
        return x3dh.Bundle(identity_key=xeddsa.seed_to_ed25519_pub(model.identity_key.secret),
                           signed_pre_key=xeddsa.priv_to_curve25519_pub(spk.priv),
                           signed_pre_key_sig=spk.sig, pre_keys=frozenset(self.prekeys().values()))

    async def agree_passive(self, header: x3dh.Header) -> tuple[bytes, bytes, bytes]:
        """Passive X3DH without consuming the one-time prekey (see ChatKeys.consume)."""
        secret, ad, spk = await x3dh.BaseState.get_shared_secret_passive(self, header, b"", True)
        return secret, ad, spk.priv


class ChatKeys:
    """This node's X3DH keys; see the module docstring. Build with :meth:`load_or_create`."""

    def __init__(self, state: _State, identity, path: Path, reserved: dict[bytes, str]):
        self._state = state
        self._identity = identity
        self._path = path
        self._reserved = reserved  # one-time prekey pub -> peer it was handed to
        self.version = 0           # bumps whenever bundles change (republish then)
        # Told (peer, one-time prekey) after each key agreement we start, so a stored copy of
        # that bundle is not used again (core.chat.bundles).
        self.on_agreed: Callable[[str, bytes], None] | None = None
        state._on_publish = self._published

    def __repr__(self) -> str:
        return f"ChatKeys(id={self.id[:16]}..., prekeys={self._state.get_num_visible_pre_keys()})"

    def __reduce_ex__(self, protocol):
        raise TypeError("ChatKeys holds private keys and cannot be serialised")

    @property
    def id(self) -> str:
        return self._identity.id

    # -- files -------------------------------------------------------------
    @classmethod
    def load_or_create(cls, home: Path, identity, *,
                       rotation_period: int = ROTATION_PERIOD) -> "ChatKeys":
        """Load the prekeys persisted in ``home`` for ``identity``, or make and save new ones.

        Raises CorruptPrekeyFile if the file is damaged or made for another identity.
        """
        path = Path(home) / PREKEY_FILE
        if not path.exists():
            state = _State.create(KEY_FORMAT, HASH, INFO, _identity_pair(identity),
                                  rotation_period, PREKEY_TARGET - 1, PREKEY_TARGET)
            keys = cls(state, identity, path, {})
            keys._save()
            return keys
        model, reserved = _read_file(path, identity)
        state = _State.from_model(model, KEY_FORMAT, HASH, INFO, rotation_period,
                                  PREKEY_TARGET - 1, PREKEY_TARGET)  # rotates if due
        _check_own_bundle(identity.id, state.bundle, path)
        keys = cls(state, identity, path, reserved)
        keys._save()  # the load may have rotated the signed prekey
        return keys

    def _published(self) -> None:
        self.version += 1
        self._save()

    def _save(self) -> None:
        model = self._state.model
        live = {pub: priv for priv, pub in self._state.prekeys().items()}
        self._reserved = {pub: peer for pub, peer in self._reserved.items() if pub in live}
        doc = {
            "format": FILE_FORMAT,
            "identity": self._identity.id,
            "spk": _spk_doc(model.signed_pre_key),
            "old_spk": None if model.old_signed_pre_key is None else _spk_doc(model.old_signed_pre_key),
            "prekeys": [{"priv": priv.hex(), "for": self._reserved.get(pub)}
                        for pub, priv in sorted(live.items())],
        }
        write_secret(self._path, json.dumps(doc, sort_keys=True).encode())

    # -- bundles -----------------------------------------------------------
    def maintain(self) -> bool:
        """Rotate the signed prekey if it is due; True if bundles changed (republish them)."""
        before = self.version
        self._state.rotate_signed_pre_key()
        return self.version != before

    def bundle_for(self, peer_id: str) -> dict:
        """A signed bundle for ``peer_id`` carrying one one-time prekey reserved for it.

        The same prekey is handed out again until the peer uses it. Raises
        PrekeysExhausted when PREKEY_CAP prekeys are all reserved.
        """
        if not is_peer_id(peer_id):
            raise MalformedMessage(f"not a peer id: {peer_id!r:.80}")
        opk = self._reserve(peer_id)
        b = self._state.bundle
        body = {"for": peer_id, "ik": b.identity_key, "spk": b.signed_pre_key,
                "spk_sig": b.signed_pre_key_sig, "opk": opk}
        return seal(self._identity, BUNDLE_KIND, body)

    def _reserve(self, peer_id: str) -> bytes:
        visible = self._state.bundle.pre_keys
        for pub, peer in self._reserved.items():
            if peer == peer_id and pub in visible:
                return pub
        free = sorted(visible - self._reserved.keys())
        if not free:
            room = PREKEY_CAP - len(visible)
            if room <= 0:
                raise PrekeysExhausted(f"all {PREKEY_CAP} one-time prekeys are reserved for peers")
            self._state.generate_pre_keys(min(room, PREKEY_TARGET))
            free = sorted(self._state.bundle.pre_keys - self._reserved.keys())
        self._reserved[free[0]] = peer_id
        self._save()
        return free[0]

    # -- key agreement (used by Session) -----------------------------------
    async def agree_active(self, bundle: Bundle) -> tuple[bytes, bytes, x3dh.Header]:
        """X3DH as initiator: (shared secret, associated data, header for the peer)."""
        try:
            agreed = await self._state.get_shared_secret_active(bundle.x3dh, b"", True)
        except (x3dh.KeyAgreementException, xeddsa.XEdDSAException, ValueError) as exc:
            raise KeyAgreementFailed(f"key agreement with {bundle.peer[:16]} failed: {exc}") from exc
        if self.on_agreed is not None and agreed[2].pre_key is not None:
            self.on_agreed(bundle.peer, agreed[2].pre_key)
        return agreed

    async def agree_passive(self, peer_id: str, header: x3dh.Header) -> tuple[bytes, bytes, bytes]:
        """X3DH as responder: (shared secret, associated data, signed prekey private half).

        The one-time prekey stays until :meth:`consume` is called for it.
        """
        try:
            return await self._state.agree_passive(header)
        except (x3dh.KeyAgreementException, xeddsa.XEdDSAException, ValueError) as exc:
            raise KeyAgreementFailed(
                f"initial message from {peer_id[:16]} refused: {exc} (a replay, or a bundle from "
                f"before this node's prekeys changed)") from exc

    def consume(self, pre_key_pub: bytes) -> None:
        """Delete a used one-time prekey, refill the pool and persist."""
        if self._state.delete_pre_key(pre_key_pub):
            self._reserved.pop(pre_key_pub, None)
            missing = PREKEY_TARGET - self._state.get_num_visible_pre_keys()
            if missing > 0:
                self._state.generate_pre_keys(missing)
            self._published()


def verify_bundle(envelope: Any, expected_peer: str, me: str) -> Bundle:
    """Check a bundle received from ``expected_peer`` for us (``me``); raise BadBundle if not valid.

    Checks the envelope signature, the signer, the addressee, the field shapes,
    that the identity key is the signer's key, and the signed prekey signature.
    """
    try:
        signer, body = verify_only(envelope, BUNDLE_KIND)
    except (InvalidSignature, MalformedMessage) as exc:
        raise BadBundle(f"prekey bundle refused: {exc}") from exc
    if signer != expected_peer:
        raise BadBundle(f"prekey bundle is signed by {signer[:16]}, not by {expected_peer[:16]}")
    if set(body) != _BUNDLE_FIELDS:
        raise BadBundle("prekey bundle has missing or unexpected fields")
    if body["for"] != me:
        raise BadBundle(f"prekey bundle from {signer[:16]} was made for another peer")
    for name, size in (("ik", 32), ("spk", 32), ("spk_sig", 64), ("opk", 32)):
        if not isinstance(body[name], bytes) or len(body[name]) != size:
            raise BadBundle(f"prekey bundle field {name} must be {size} bytes")
    if body["ik"] != bytes.fromhex(signer):
        raise BadBundle("prekey bundle identity key is not the signer's key")
    if not _spk_signature_ok(body["ik"], body["spk"], body["spk_sig"]):
        raise BadBundle(f"signed prekey of {signer[:16]} has a bad signature")
    return Bundle(signer, x3dh.Bundle(body["ik"], body["spk"], body["spk_sig"], frozenset({body["opk"]})),
                  envelope)


def _spk_signature_ok(ik: bytes, spk: bytes, sig: bytes) -> bool:
    try:
        return bool(xeddsa.ed25519_verify(sig, ik, encode_public_key(x3dh.IdentityKeyFormat.CURVE_25519, spk)))
    except xeddsa.XEdDSAException:
        return False


def _identity_pair(identity) -> IdentityKeyPairSeed:
    return IdentityKeyPairSeed(bytes(identity.signing_key))


def _check_own_bundle(peer_id: str, bundle: x3dh.Bundle, path: Path) -> None:
    if bundle.identity_key != bytes.fromhex(peer_id) or not _spk_signature_ok(
            bundle.identity_key, bundle.signed_pre_key, bundle.signed_pre_key_sig):
        raise CorruptPrekeyFile(f"{path}: its signed prekey is not signed by this identity; "
                                f"delete the file to make new prekeys")


def _spk_doc(spk) -> dict:
    return {"priv": spk.priv.hex(), "sig": spk.sig.hex(), "ts": spk.timestamp}


def _read_file(path: Path, identity) -> tuple[x3dh.BaseStateModel, dict[bytes, str]]:
    """Parse and validate the prekey file into the library's state model."""
    def bad(why: str) -> CorruptPrekeyFile:
        return CorruptPrekeyFile(f"{path}: {why}; delete it to make new prekeys "
                                 f"(messages sent to the old ones can then not be opened)")
    if path.stat().st_size > _MAX_FILE:
        raise bad("file is too large")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise bad("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise bad("unknown format")
    if doc.get("identity") != identity.id:
        raise bad("made for another identity")
    try:
        spk = _spk_model(doc["spk"])
        old = None if doc["old_spk"] is None else _spk_model(doc["old_spk"])
        prekeys = doc["prekeys"]
        if not isinstance(prekeys, list) or len(prekeys) > PREKEY_CAP:
            raise ValueError("prekeys")
        privs, reserved = set(), {}
        for entry in prekeys:
            priv = _hex32(entry["priv"])
            privs.add(priv)
            peer = entry["for"]
            if peer is not None:
                if not is_peer_id(peer):
                    raise ValueError("for")
                reserved[xeddsa.priv_to_curve25519_pub(priv)] = peer
    except (KeyError, TypeError, ValueError):
        raise bad("fields are missing or malformed") from None
    model = x3dh.BaseStateModel(identity_key=_identity_pair(identity).model, signed_pre_key=spk,
                                old_signed_pre_key=old, pre_keys=frozenset(privs))
    return model, reserved


def _hex32(text: Any) -> bytes:
    raw = bytes.fromhex(text) if isinstance(text, str) else b""
    if len(raw) != 32:
        raise ValueError("key")
    return raw


def _spk_model(doc: Any) -> x3dh.SignedPreKeyPairModel:
    sig = bytes.fromhex(doc["sig"])
    ts = doc["ts"]
    if len(sig) != 64 or isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise ValueError("spk")
    return x3dh.SignedPreKeyPairModel(priv=_hex32(doc["priv"]), sig=sig, timestamp=ts)
