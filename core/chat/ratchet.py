"""The double ratchet (``doubleratchet`` package) and the chat message wire format.

Choices: Curve25519 DH ratchet, HKDF-SHA-256 root chain, HMAC-SHA-256 message
chain (constants as Signal: 0x02 chain key, 0x01 message key), AES-256-GCM
with a random 96-bit nonce as the AEAD. At most ``MAX_SKIP`` message keys are
derived ahead for one message or kept for late ones.

Wire format (fixed fields, big-endian): version (1 byte, 2), flags (1 byte:
bit 0 set when the X3DH header follows), the ratchet public key (32 bytes),
``pn`` and ``n`` (the previous and current sending-chain lengths, 4 bytes
each), then the 128-byte X3DH header ``ik|ek|spk|opk`` if flagged (the
initiator attaches it until the peer's first reply), then the ciphertext
``nonce|AES-GCM(plaintext)`` (the rest). Every field is checked by
:func:`decode`.

The ratchet's state can be neither dumped (``model``/``json`` raise) nor
pickled: it lives in memory only.
"""
from __future__ import annotations

import copy
import enum
import hashlib
import logging
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any, NamedTuple, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import doubleratchet
from doubleratchet import AEAD, AuthenticationFailedException, DoubleRatchet, EncryptedMessage, Header
from doubleratchet.recommended import HashFunction, kdf_hkdf, kdf_separate_hmacs
from doubleratchet.kdf_chain import KDFChain
from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import DiffieHellmanRatchet
from doubleratchet.symmetric_key_ratchet import SymmetricKeyRatchet

from core.errors import MalformedMessage, MessageTooLarge, UnsupportedVersion

log = logging.getLogger("covey.chat.ratchet")

VERSION = 2               # 1 was a msgpack array of the same fields
MAX_SKIP = 1000
SKIPPED_TTL = 300.0       # seconds a skipped message key is kept for a late message (then dropped:
                          # forward secrecy for messages lost in a cut, which travel again anyway)
MAX_PLAINTEXT = 256 * 1024
NONCE = 12
TAG = 16
X3DH_HEADER = 128
MAX_WIRE = MAX_PLAINTEXT + NONCE + TAG + X3DH_HEADER + 128


class RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"covey/v1/chat/root"


class MessageKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @classmethod
    async def derive(cls, key: bytes, data: bytes, length: int) -> bytes:
        return derive_now(key, data, length)


def derive_now(key: bytes, data: bytes, length: int) -> bytes:
    """The library's message-chain derive (one HMAC-SHA-256 per byte of ``data``, concatenated),
    each HMAC as RFC 2104 writes it: two one-shot SHA-256 over the padded key and the input (the
    same bytes; cheaper than the hmac module's object or a copied hash for a 1-byte input)."""
    if length != len(data) * 32:
        raise ValueError("this HMAC-based KDF derives 32 bytes per byte of KDF data")
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    inner, outer, sha = block.translate(_IPAD), block.translate(_OPAD), hashlib.sha256
    if len(data) == 2:   # the message chain's constant (b"\x02\x01"): every message, both ends
        return (sha(outer + sha(inner + data[:1]).digest()).digest()
                + sha(outer + sha(inner + data[1:]).digest()).digest())
    return b"".join(sha(outer + sha(inner + data[i:i + 1]).digest()).digest() for i in range(len(data)))


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


_T = TypeVar("_T")


def run_now(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine of the ratchet or X3DH libraries to its end within this call.

    Their API is async but does no I/O: nothing in it ever suspends, so a session
    operation is one atomic step of the event loop (no other decrypt can run half-way
    through it and lose its state update). Should a future version suspend, this
    refuses loudly instead of interleaving two operations."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a ratchet operation suspended: it must run to its end in one step")


class AesGcm(AEAD):
    """AES-256-GCM keyed by the 32-byte message key; the nonce travels in front."""

    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        return _seal(plaintext, key, associated_data)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        return _open(ciphertext, key, associated_data)


def _seal(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def _open(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
    if len(ciphertext) < NONCE + TAG:
        raise AuthenticationFailedException("ciphertext too short")
    try:
        return AESGCM(key).decrypt(ciphertext[:NONCE], ciphertext[NONCE:], associated_data)
    except InvalidTag:
        raise AuthenticationFailedException("authentication tag does not match") from None


class Ratchet(DoubleRatchet):
    """DoubleRatchet with the choices above; never serialisable."""

    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        # The caller's AD is length-prefixed so (ad, header) parses uniquely.
        return (struct.pack(">I", len(associated_data)) + associated_data + header.ratchet_pub
                + struct.pack(">II", header.previous_sending_chain_length, header.sending_chain_length))

    @property
    def model(self):
        raise TypeError("ratchet state stays in memory: it cannot be exported")

    @property
    def json(self):
        raise TypeError("ratchet state stays in memory: it cannot be exported")

    def __reduce_ex__(self, protocol):
        raise TypeError("ratchet state stays in memory: it cannot be pickled")

    async def encrypt_message(self, message: bytes, associated_data: bytes) -> EncryptedMessage:
        return self.encrypt_now(message, associated_data)

    def encrypt_now(self, message: bytes, associated_data: bytes) -> EncryptedMessage:
        """The library's encrypt_message (doubleratchet 1.3.0) in this call, step for step: the
        header (our ratchet public key, the previous and current sending-chain lengths), one step
        of the sending chain for the message key, the AEAD; without its four coroutine layers."""
        chain = self._chain(_SENDING) if _OWN_DECRYPT else None
        if chain is None:      # no sending chain (the library raises) or another layout
            return run_now(super().encrypt_message(message, associated_data))
        dh_state = self.__dict__[_DR_DH].__dict__
        skr = dh_state[_SKR].__dict__
        header = Header(self.__dict__[_DR_DH]._derive_pub(dh_state[_OWN_PRIV]), skr[_PREV_LEN] or 0,
                        chain[_LENGTH])
        message_key = _step(chain, skr[_CONSTANT])
        return EncryptedMessage(header, _seal(message, message_key,
                                              self._build_associated_data(associated_data, header)))

    def _chain(self, which: str) -> dict | None:
        """The state of the symmetric ratchet's ``which`` chain, if it is the plain KDFChain of our
        MessageKDF under the known layout (else None: the library's own path is taken)."""
        if not CopyingDH._layout_checked or self.__dict__[_DR_AEAD] is not AesGcm:
            return None
        chain = self.__dict__[_DR_DH].__dict__[_SKR].__dict__[which]
        if chain is None:
            return None
        state = chain.__dict__
        return state if state[_KDF] is MessageKDF else None

    async def decrypt_message(self, message: EncryptedMessage, associated_data: bytes) -> bytes:
        return self.decrypt_now(message, associated_data)

    def decrypt_now(self, message: EncryptedMessage, associated_data: bytes) -> bytes:
        """The library's decrypt transaction, in this call. The common case (the next message of
        the current receiving chain: same ratchet key, no key skipped or stored) derives the key
        from the chain without copying the ratchet, and advances the chain only once the AEAD
        accepted the message: the library's copy-then-commit, with the same outcome on success
        and failure. Anything else goes through :meth:`_decrypt_copying`."""
        header = message.header
        if self.__dict__.get(_STORED_AT):
            self.expire_skipped(time.monotonic())
        dh = self.__dict__[_DR_DH]
        chain = self._chain(_RECEIVING) if _OWN_DECRYPT else None
        if (chain is None or header.ratchet_pub != dh.__dict__[_OTHER_PUB]
                or header.sending_chain_length != chain[_LENGTH]
                or (header.ratchet_pub, header.sending_chain_length) in self.__dict__[_DR_SKIPPED]):
            return run_now(self._decrypt_copying(message, associated_data))
        key = chain[_KEY]
        out = derive_now(key, dh.__dict__[_SKR].__dict__[_CONSTANT], len(key) + 32)
        plaintext = _open(message.ciphertext, out[len(key):],
                          self._build_associated_data(associated_data, header))
        # Accepted: the changes the library's KDFChain.step made on its copy, now kept.
        chain[_LENGTH] += 1
        chain[_KEY] = out[:len(key)]
        return plaintext

    async def _decrypt_copying(self, message: EncryptedMessage, associated_data: bytes) -> bytes:
        """The library's decrypt transaction (doubleratchet 1.3.0, step for step: the DH ratchet is
        copied, the copy derives the key, the AEAD checks it, the copy is kept on success), except
        that the bound on stored skipped keys drops the oldest ones in place: the library rebuilt
        the whole store on every decrypt, so each message cost O(stored keys) (about 14 times a
        plain decrypt with 990 stored, as a few cuts leave behind: every frame lost in flight
        leaves its key, the retransmission travels as a new ratchet message)."""
        if not _OWN_DECRYPT:
            return await DoubleRatchet.decrypt_message(self, message, associated_data)
        state = self.__dict__
        current = state[_DR_DH]
        dh = current.__deepcopy__({}) if type(current) is CopyingDH else copy.deepcopy(current)
        stored: OrderedDict = state[_DR_SKIPPED]
        header = message.header
        key_id = (header.ratchet_pub, header.sending_chain_length)
        message_key = stored.get(key_id)      # message keys are bytes: None means absent
        new_keys = None
        if message_key is None:
            message_key, new_keys = await dh.next_decryption_key(header)
        plaintext = await state[_DR_AEAD].decrypt(
            message.ciphertext, message_key, self._build_associated_data(associated_data, header))
        stored.pop(key_id, None)
        stored_at = state.setdefault(_STORED_AT, OrderedDict())
        stored_at.pop(key_id, None)
        if new_keys:
            stored.update(new_keys)
            now = time.monotonic()
            for new_id in new_keys:
                stored_at[new_id] = now
            for _ in range(len(stored) - state[_DR_MAX_SKIPPED]):
                stored_at.pop(stored.popitem(last=False)[0], None)
        state[_DR_DH] = dh
        return plaintext

    def expire_skipped(self, now: float) -> int:
        """Drop the skipped message keys stored more than SKIPPED_TTL seconds before ``now``
        (monotonic); returns how many. They are kept in the order they were stored."""
        stored_at: OrderedDict | None = self.__dict__.get(_STORED_AT)
        stored: OrderedDict = self.__dict__[_DR_SKIPPED]
        dropped = 0
        while stored_at and next(iter(stored_at.values())) <= now - SKIPPED_TTL:
            stored.pop(stored_at.popitem(last=False)[0], None)
            dropped += 1
        return dropped

    def next_skipped_expiry(self) -> float | None:
        """When (monotonic) the oldest stored skipped key falls due, if any is stored."""
        stored_at: OrderedDict | None = self.__dict__.get(_STORED_AT)
        return next(iter(stored_at.values())) + SKIPPED_TTL if stored_at else None


# Ratchet.decrypt_message replaces the library's own only for the version it was read from.
_OWN_DECRYPT = doubleratchet.__version__ == "1.3.0"
_DR_DH, _DR_SKIPPED = "_DoubleRatchet__diffie_hellman_ratchet", "_DoubleRatchet__skipped_message_keys"
_DR_AEAD, _DR_MAX_SKIPPED = "_DoubleRatchet__aead", "_DoubleRatchet__max_num_skipped_message_keys"
_STORED_AT = "_skipped_stored_at"   # ours: skipped key id -> monotonic time stored (the store's order)
_OWN_PRIV, _OTHER_PUB = "_DiffieHellmanRatchet__own_ratchet_priv", "_DiffieHellmanRatchet__other_ratchet_pub"
_RECEIVING, _SENDING = "_SymmetricKeyRatchet__receiving_chain", "_SymmetricKeyRatchet__sending_chain"
_PREV_LEN, _CONSTANT = "_SymmetricKeyRatchet__previous_sending_chain_length", "_SymmetricKeyRatchet__constant"
_KDF, _KEY, _LENGTH = "_KDFChain__kdf", "_KDFChain__key", "_KDFChain__length"


def _step(chain: dict, constant: bytes) -> bytes:
    """KDFChain.step(constant, 32) on a chain's state (MessageKDF): advance it, return the output."""
    key = chain[_KEY]
    out = derive_now(key, constant, len(key) + 32)
    chain[_LENGTH] += 1
    chain[_KEY] = out[:len(key)]
    return out[len(key):]

_LEAVES = frozenset({bytes, str, int, float, bool, type(None)})   # by exact type: one set lookup
_IMMUTABLE = (bytes, str, int, float, bool, type(None), type, frozenset, enum.Enum)
_NODES = (KDFChain, SymmetricKeyRatchet)
_MEMO = "_pub_memo"  # (priv, key object, pub): immutable (CopyingDH._key)


def _tree_copy(obj, memo: dict):
    """A deep copy of the ratchet's state tree: its objects are copied, its leaves (bytes, ints,
    KDF classes) shared, as deepcopy would leave them; anything else goes through deepcopy."""
    clone = object.__new__(type(obj))
    memo[id(obj)] = clone
    state = obj.__dict__.copy()
    for key, value in state.items():   # replaces values in place: the keys stay as they are
        if type(value) in _LEAVES or key == _MEMO:
            continue
        if isinstance(value, _NODES):
            state[key] = memo.get(id(value)) or _tree_copy(value, memo)
        elif not isinstance(value, _IMMUTABLE):
            state[key] = copy.deepcopy(value, memo)
    clone.__dict__ = state
    return clone


# The library's state layout (doubleratchet 1.x): the DH ratchet holds a root KDFChain and a
# SymmetricKeyRatchet, which holds up to two KDFChains; every other attribute is a leaf (bytes,
# int, None, a KDF class). _layout_known() checks it once; if a future version changes it,
# _tree_copy (generic) takes over.
_ROOT = "_DiffieHellmanRatchet__root_chain"
_SKR = "_DiffieHellmanRatchet__symmetric_key_ratchet"
_CHAINS = ("_SymmetricKeyRatchet__receiving_chain", "_SymmetricKeyRatchet__sending_chain")
_DH_KEYS = frozenset({_ROOT, _SKR, "_DiffieHellmanRatchet__dos_protection_threshold",
                      "_DiffieHellmanRatchet__own_ratchet_priv", "_DiffieHellmanRatchet__other_ratchet_pub"})
_SKR_KEYS = frozenset({*_CHAINS, "_SymmetricKeyRatchet__kdf", "_SymmetricKeyRatchet__constant",
                       "_SymmetricKeyRatchet__previous_sending_chain_length"})
_CHAIN_KEYS = frozenset({"_KDFChain__kdf", "_KDFChain__key", "_KDFChain__length"})


def _leaf(value) -> bool:
    return type(value) in _LEAVES or isinstance(value, type)


def _layout_is(dh) -> bool:
    """Whether ``dh``'s state has exactly the layout _fast_copy knows (see above)."""
    state = dh.__dict__
    if set(state) - {_MEMO} != _DH_KEYS or type(state[_ROOT]) is not KDFChain \
            or type(state[_SKR]) is not SymmetricKeyRatchet:
        return False
    skr = vars(state[_SKR])
    chains = [vars(state[_ROOT])] + [vars(skr[k]) for k in _CHAINS if skr[k] is not None]
    return (set(skr) == _SKR_KEYS and all(skr[k] is None or type(skr[k]) is KDFChain for k in _CHAINS)
            and all(set(c) == _CHAIN_KEYS and all(map(_leaf, c.values())) for c in chains)
            and all(_leaf(v) for k, v in skr.items() if k not in _CHAINS)
            and all(_leaf(v) for k, v in state.items() if k not in (_ROOT, _SKR, _MEMO)))


def _fast_copy(dh):
    """The deep copy of a DH ratchet of the known layout: its three or four objects are copied
    (a dict copy each), every leaf shared (all immutable)."""
    clone = object.__new__(type(dh))
    state = clone.__dict__ = dh.__dict__.copy()
    root = state[_ROOT]
    state[_ROOT] = new_root = object.__new__(KDFChain)
    new_root.__dict__ = root.__dict__.copy()
    skr = state[_SKR]
    state[_SKR] = new_skr = object.__new__(SymmetricKeyRatchet)
    skr_state = new_skr.__dict__ = skr.__dict__.copy()
    for key in _CHAINS:
        chain = skr_state[key]
        if chain is not None:
            skr_state[key] = new_chain = object.__new__(KDFChain)
            new_chain.__dict__ = chain.__dict__.copy()
    return clone


class CopyingDH(DiffieHellmanRatchet):
    """The recommended Curve25519 DH ratchet with a faster deep copy.

    The library deep-copies this object on every decrypt (and commits the copy on
    success); the generic ``copy.deepcopy`` walk was most of a decrypt's time."""

    _layout_checked: bool | None = None   # per class: None until the first copy checks it

    def __deepcopy__(self, memo):
        fast = CopyingDH._layout_checked
        if fast is None:
            fast = CopyingDH._layout_checked = _layout_is(self)
            if not fast:
                log.warning("doubleratchet's state layout changed: the generic ratchet copy is used")
        if fast:
            clone = _fast_copy(self)
            memo[id(self)] = clone
            return clone
        return _tree_copy(self, memo)

    # The library declares these three staticmethods and calls them through the instance; ours
    # keep the current private key's object and public half per instance, so they must be methods
    # (a narrower signature mypy cannot see is safe here). The memo is (priv, key object, pub):
    # immutable, held by this instance only, replaced when the key turns, gone when it is wiped.
    # It spares a scalar multiplication per header (the public half) and two per DH step (the
    # library re-parses the private key, which derives its public half, for every exchange).
    def _generate_priv(self) -> bytes:  # type: ignore[override]
        key = X25519PrivateKey.generate()
        priv = key.private_bytes_raw()
        self._pub_memo = (priv, key, key.public_key().public_bytes_raw())
        return priv

    def _key(self, priv: bytes) -> tuple[bytes, X25519PrivateKey, bytes]:
        memo = self.__dict__.get(_MEMO)
        if memo is None or memo[0] != priv:
            key = X25519PrivateKey.from_private_bytes(priv)
            memo = self._pub_memo = (priv, key, key.public_key().public_bytes_raw())
        return memo

    def _derive_pub(self, priv: bytes) -> bytes:  # type: ignore[override]
        return self._key(priv)[2]

    def _perform_diffie_hellman(self, own_priv: bytes, other_pub: bytes) -> bytes:  # type: ignore[override]
        return self._key(own_priv)[1].exchange(X25519PublicKey.from_public_bytes(other_pub))


# Positional parameters shared by encrypt_initial_message/decrypt_initial_message.
PARAMS = (CopyingDH, RootKDF, MessageKDF, b"\x02\x01", MAX_SKIP, MAX_SKIP, AesGcm)


class X3DHHead(NamedTuple):
    """The X3DH header the initiator attaches: identity, ephemeral, signed and one-time prekey."""
    ik: bytes
    ek: bytes
    spk: bytes
    opk: bytes

    def pack(self) -> bytes:
        return self.ik + self.ek + self.spk + self.opk


class WireMessage(NamedTuple):
    x3dh: X3DHHead | None
    header: Header
    ciphertext: bytes


_HEAD = struct.Struct(">BB32sII")   # version, flags, ratchet key, pn, n
_WITH_X3DH = 0x01


def encode(x3dh_head: X3DHHead | None, header: Header, ciphertext: bytes) -> bytes:
    """The wire bytes of one ratchet message."""
    if len(header.ratchet_pub) != 32:
        raise ValueError("a ratchet public key is 32 bytes")
    if x3dh_head is None:
        return _HEAD.pack(VERSION, 0, header.ratchet_pub, header.previous_sending_chain_length,
                          header.sending_chain_length) + ciphertext
    return (_HEAD.pack(VERSION, _WITH_X3DH, header.ratchet_pub, header.previous_sending_chain_length,
                       header.sending_chain_length) + x3dh_head.pack() + ciphertext)


def decode(data: bytes) -> WireMessage:
    """Parse and validate wire bytes; raise MalformedMessage, MessageTooLarge or UnsupportedVersion."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("a chat message must be bytes")
    if len(data) > MAX_WIRE:
        raise MessageTooLarge(f"chat message of {len(data)} bytes exceeds {MAX_WIRE}")
    if len(data) < _HEAD.size:
        raise MalformedMessage(f"chat message is shorter than its {_HEAD.size}-byte head")
    version, flags, pub, pn, n = _HEAD.unpack_from(data)
    if version != VERSION:
        raise UnsupportedVersion(f"chat message version {version} (this node speaks {VERSION})")
    if flags & ~_WITH_X3DH:
        raise MalformedMessage(f"chat message has unknown flags {flags:#04x}")
    at, x3dh_head = _HEAD.size, None
    if flags:
        head = bytes(data[at:at + X3DH_HEADER])
        if len(head) != X3DH_HEADER:
            raise MalformedMessage(f"X3DH header must be {X3DH_HEADER} bytes")
        x3dh_head = X3DHHead(head[:32], head[32:64], head[64:96], head[96:])
        at += X3DH_HEADER
    ct = bytes(data[at:])
    if not NONCE + TAG <= len(ct) <= NONCE + TAG + MAX_PLAINTEXT:
        raise MalformedMessage("ciphertext has an impossible length")
    return WireMessage(x3dh_head, Header(pub, pn, n), ct)
