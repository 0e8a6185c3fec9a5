"""One end-to-end encrypted conversation with one peer, in memory only.

Usage (both ends hold a :class:`~core.chat.x3dh_adapter.ChatKeys`)::

    bundle = verify_bundle(envelope, peer_id, keys.id)          # from the peer
    session, wire = await Session.initiate(keys, peer_id, bundle, b"hi")
    # peer:  session, text = await Session.accept(keys, my_id, wire)
    wire = await session.encrypt(b"more")   # -> bytes for the transport
    text = await session.decrypt(wire)      # raises a typed ChatError on bad input
    session.wipe()                          # close: drop every key

The initiator attaches its X3DH header to every message until the first
reply decrypts, so the peer can start the session from whichever message
arrives first. A message carrying a different X3DH header raises
:class:`NewSession`: the caller decides whether to :meth:`Session.accept` it.

Every message's associated data binds the X3DH identities, the sender and
recipient ids, the X3DH header if attached, and the ratchet header. Each
operation runs to its end in one call (``*_now``; the async forms wrap them):
the libraries' async API never suspends (:func:`~core.chat.ratchet.run_now`
refuses if it ever does), so no two operations on a session interleave (the
library decrypts on a copy and commits on success; two at once would lose an
update). There is deliberately no way to export or pickle a session.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import x3dh
from doubleratchet import (AuthenticationFailedException, DecryptionFailedException,
                           DoSProtectionException, DuplicateMessageException, EncryptedMessage)

from core.errors import CoveyError, MalformedMessage, MessageTooLarge
from core.chat.errors import (DecryptFailed, ForgedSender, KeyAgreementFailed, NewSession,
                              ReplayedMessage, SessionClosed, TooManySkipped, UnknownSession)
from core.chat.ratchet import MAX_PLAINTEXT, MAX_SKIP, PARAMS, Ratchet, X3DHHead, decode, encode, run_now
from core.chat.x3dh_adapter import Bundle, ChatKeys

AD_DOMAIN = b"covey/v1/chat/msg\0"


def _check_plaintext(plaintext: bytes) -> bytes:
    if not isinstance(plaintext, (bytes, bytearray)):
        raise MalformedMessage("chat plaintext must be bytes")
    if len(plaintext) > MAX_PLAINTEXT:
        raise MessageTooLarge(f"chat message of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT}")
    return bytes(plaintext)


_LIBRARY_REFUSALS = (AuthenticationFailedException, DecryptionFailedException, DuplicateMessageException,
                     DoSProtectionException)


def _refusal(peer: str, exc: Exception) -> CoveyError:
    """The typed chat error, naming the peer, for one of the library's ``_LIBRARY_REFUSALS``."""
    if isinstance(exc, DuplicateMessageException):
        return ReplayedMessage(f"message from {peer[:16]} was already decrypted (replay)")
    if isinstance(exc, DoSProtectionException):
        return TooManySkipped(f"message from {peer[:16]} skips more than {MAX_SKIP} message keys")
    return DecryptFailed(f"message from {peer[:16]} does not decrypt (tampered, forged, "
                         f"or for another conversation)")


@contextlib.contextmanager
def _refusals(peer: str) -> Iterator[None]:
    """Turn the library's exceptions into typed chat errors that name the peer."""
    try:
        yield
    except _LIBRARY_REFUSALS as exc:
        raise _refusal(peer, exc) from exc


class Session:
    """See the module docstring. Build with :meth:`initiate` or :meth:`accept`."""

    def __init__(self, me: str, peer: str, ratchet: Ratchet, x3dh_ad: bytes, head: X3DHHead,
                 initiator: bool):
        self._me = me
        self._peer = peer
        self.initiator = initiator
        self.session_id = head.ek  # public: the initiator's ephemeral key names the session
        self._ratchet: Ratchet | None = ratchet
        self._x3dh_ad = x3dh_ad
        self._head: X3DHHead | None = head
        self._attach = initiator
        self._head_packed = head.pack()
        self._ad_ids = ("", "")
        self._ad_out = self._ad_in = b""

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Session(peer={self.peer[:16]}..., {state}, initiator={self.initiator})"

    def __reduce_ex__(self, protocol):
        raise TypeError("a chat session stays in memory: it cannot be copied or pickled")

    @property
    def me(self) -> str:
        return self._me

    @property
    def peer(self) -> str:
        """The peer id; fixed for the session's life (it is bound into every message)."""
        return self._peer

    @property
    def closed(self) -> bool:
        return self._ratchet is None

    @property
    def opens_alone(self) -> bool:
        """Whether the peer can start this session from any of its messages, even after a restart
        (we initiated it and it has not replied yet, so every message carries the X3DH header)."""
        return self.initiator and self._attach and not self.closed

    # -- starting ------------------------------------------------------------
    @classmethod
    async def initiate(cls, keys: ChatKeys, peer_id: str, bundle: Bundle,
                       first_plaintext: bytes) -> tuple["Session", bytes]:
        """Start a session with ``peer_id`` from its verified bundle; returns (session, wire bytes)."""
        return cls.initiate_now(keys, peer_id, bundle, first_plaintext)

    @classmethod
    def initiate_now(cls, keys: ChatKeys, peer_id: str, bundle: Bundle,
                     first_plaintext: bytes) -> tuple["Session", bytes]:
        """:meth:`initiate`, in this call."""
        plaintext = _check_plaintext(first_plaintext)
        if bundle.peer != peer_id:
            raise ForgedSender(f"bundle of {bundle.peer[:16]} used for {peer_id[:16]}")
        secret, x3dh_ad, header = run_now(keys.agree_active(bundle))
        if header.pre_key is None:   # our bundles always carry one (ChatKeys.bundle_for reserves it)
            raise KeyAgreementFailed(f"the bundle of {peer_id[:16]} carries no one-time prekey")
        head = X3DHHead(header.identity_key, header.ephemeral_key, header.signed_pre_key, header.pre_key)
        ad = _ad(x3dh_ad, keys.id, peer_id, head)
        ratchet, msg = run_now(Ratchet.encrypt_initial_message(
            *PARAMS, secret, bundle.x3dh.signed_pre_key, plaintext, ad))
        return cls(keys.id, peer_id, ratchet, x3dh_ad, head, True), encode(head, msg.header, msg.ciphertext)

    @classmethod
    async def accept(cls, keys: ChatKeys, peer_id: str, data: bytes) -> tuple["Session", bytes]:
        """Start the session ``peer_id`` initiated with the message ``data``; returns (session, plaintext).

        Raises UnknownSession if ``data`` carries no X3DH header, ForgedSender if
        the header names another identity, KeyAgreementFailed if its prekey is
        unknown or used (replay), DecryptFailed if it does not decrypt.
        """
        return cls.accept_now(keys, peer_id, data)

    @classmethod
    def accept_now(cls, keys: ChatKeys, peer_id: str, data: bytes) -> tuple["Session", bytes]:
        """:meth:`accept`, in this call."""
        wire = decode(data)
        head = wire.x3dh
        if head is None:
            raise UnknownSession(f"message from {peer_id[:16]} is for a session this node does not "
                                 f"have (closed, or from before a restart)")
        if head.ik != bytes.fromhex(peer_id):
            raise ForgedSender(f"initial message from {peer_id[:16]} names another identity")
        secret, x3dh_ad, spk_priv = run_now(keys.agree_passive(
            peer_id, x3dh.Header(head.ik, head.ek, head.spk, head.opk)))
        with _refusals(peer_id):
            ratchet, plaintext = run_now(Ratchet.decrypt_initial_message(
                *PARAMS, secret, spk_priv, EncryptedMessage(wire.header, wire.ciphertext),
                _ad(x3dh_ad, peer_id, keys.id, head)))
        keys.consume(head.opk)  # only now: a tampered copy must not burn the prekey
        return cls(keys.id, peer_id, ratchet, x3dh_ad, head, False), plaintext

    # -- messages --------------------------------------------------------------
    async def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one message for the peer; returns the wire bytes."""
        return self.encrypt_now(plaintext)

    def encrypt_now(self, plaintext: bytes) -> bytes:
        """:meth:`encrypt`, in this call."""
        plaintext = _check_plaintext(plaintext)
        ratchet = self._live()
        if self._ad_ids[1] is not self._peer:
            self._fixed_ad()
        if self._attach:
            head, ad = self._head, self._ad_out + self._head_packed
        else:
            head, ad = None, self._ad_out
        msg = ratchet.encrypt_now(plaintext, ad)
        return encode(head, msg.header, msg.ciphertext)

    async def decrypt(self, data: bytes) -> bytes:
        """Decrypt one message from the peer; raises a typed ChatError (state unchanged) if refused."""
        return self.decrypt_now(data)

    def decrypt_now(self, data: bytes) -> bytes:
        """:meth:`decrypt`, in this call."""
        wire = decode(data)
        ratchet = self._live()
        if self._ad_ids[1] is not self._peer:
            self._fixed_ad()
        ad = self._ad_in
        if wire.x3dh is not None:
            if self.initiator or wire.x3dh != self._head:
                raise NewSession(f"{self.peer[:16]} started a new session")
            ad += self._head_packed      # the same header (just checked)
        try:  # inline rather than _refusals: no context manager to build for every message
            plaintext = ratchet.decrypt_now(EncryptedMessage(wire.header, wire.ciphertext), ad)
        except _LIBRARY_REFUSALS as exc:
            raise _refusal(self.peer, exc) from exc
        self._attach = False  # the peer has the session: no need to send the header again
        return plaintext

    def _fixed_ad(self) -> None:
        """The fixed part of every message's associated data, each way (:func:`_ad` without
        the X3DH header), made once for the ids it names."""
        self._ad_ids = (self._me, self._peer)
        self._ad_out = _ad(self._x3dh_ad, self._me, self._peer, None)
        self._ad_in = _ad(self._x3dh_ad, self._peer, self._me, None)

    def expire_skipped(self, now: float) -> int:
        """Drop the skipped message keys kept longer than ratchet.SKIPPED_TTL (``now``: monotonic)."""
        return 0 if self._ratchet is None else self._ratchet.expire_skipped(now)

    def wipe(self) -> None:
        """Close the session: drop every reference to key material (idempotent)."""
        self._ratchet = None
        self._x3dh_ad = self._ad_out = self._ad_in = self._head_packed = b""
        self._head = None
        self._attach = False

    def _live(self) -> Ratchet:
        if self._ratchet is None:
            raise SessionClosed(f"the session with {self.peer[:16]} was closed")
        return self._ratchet


def _ad(x3dh_ad: bytes, sender: str, recipient: str, head: X3DHHead | None) -> bytes:
    """Associated data of one message (fixed-size parts, then the optional X3DH header)."""
    return (AD_DOMAIN + x3dh_ad + bytes.fromhex(sender) + bytes.fromhex(recipient)
            + (b"" if head is None else head.pack()))
