"""Authenticated handshake: mode negotiation bound into Noise XX.

Sequence on a fresh WebSocket (initiator = the dialling side)::

    -> HELLO   {proto, v, modes, pref, min, port}            plaintext map
    <- CHOICE  {proto, v, mode, modes, min} or ERROR {code, ...}
    -> Noise XX message 1   ([psk,] e)
    <- Noise XX message 2   (e, ee, s, es) + responder identity payload, or a plaintext ERROR
    -> Noise XX message 3   (s, se [, psk]) + initiator identity payload
    <- first transport frame ("ready") or a plaintext ERROR

Both plaintext negotiation messages are the Noise *prologue*, so a
man in the middle who edits the offered modes (a downgrade) makes the
handshake fail. Symmetric mode runs ``Noise_XXpsk0+psk3`` with the network
key as both PSKs: psk0 mixes the key in before the first message, so the
responder checks it before it says anything, and its identity payload
travels only under a key that needs the PSK (with psk3 alone, a client
without the key learned the responder's id and name from message 2).
psk0+psk3 rather than psk0 alone because that is the name with published
test vectors (snow's); the second mix costs nothing. Each
side's Ed25519 identity signs its Noise static key (as libp2p does); the
static key is fresh per process and the signature is computed once.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseInvalidMessage

from core.net import wire
from core.config import MODE_RANK, MODES, offered_modes
from core.errors import HandshakeFailed, InvalidSignature, MalformedMessage, PeerRequiresMode

STATIC_DOMAIN = b"covey/v1/noise-static\0"
PROLOGUE_DOMAIN = b"covey/v1/handshake\0"
NOISE_NAMES = {
    "none": b"Noise_XX_25519_AESGCM_SHA256",
    "asymmetric": b"Noise_XX_25519_AESGCM_SHA256",
    "symmetric": b"Noise_XXpsk0+psk3_25519_AESGCM_SHA256",
}
TAG = 16
_NONCE = struct.Struct(">4xQ")  # Noise AESGCM nonce: 32 zero bits + 64-bit counter


@dataclass
class LocalEndpoint:
    """What one node brings to every handshake (computed once per process)."""
    identity: object            # core.identity.Identity
    pref: str
    min: str
    psk: bytes | None
    static_private: bytes
    static_payload: bytes
    listen_port: int = 0
    announce_port: bool = True  # False over tor: peers cannot dial what they see of us

    @classmethod
    def create(cls, identity, pref: str, min_mode: str, psk: bytes | None, listen_port: int = 0,
               announce_port: bool = True):
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        key = X25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        payload = wire.pack_plain({
            "id": identity.public_bytes,
            "sig": identity.sign(STATIC_DOMAIN + public),
            "name": identity.name[:64],
        })
        return cls(identity, pref, min_mode, psk, private, payload, listen_port, announce_port)

    def offered(self) -> list[str]:
        return offered_modes(self.min, bool(self.psk))


def make_hello(local: LocalEndpoint) -> bytes:
    return wire.pack_plain({"proto": wire.PROTOCOL, "v": wire.VERSION, "modes": local.offered(),
                            "pref": local.pref, "min": local.min,
                            "port": local.listen_port if local.announce_port else 0})


def parse_hello(data: bytes) -> dict:
    hello = wire.unpack_plain(data)
    wire.check_version(hello)
    modes, pref, port = hello.get("modes"), hello.get("pref"), hello.get("port", 0)
    if not isinstance(modes, list) or not modes or not all(m in MODE_RANK for m in modes):
        raise MalformedMessage("hello: offered modes missing or unknown")
    if pref not in MODE_RANK or hello.get("min") not in MODE_RANK:
        raise MalformedMessage("hello: preferred or minimum mode unknown")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise MalformedMessage("hello: listen port invalid")
    return hello


def negotiate(theirs: list[str], their_pref: str, ours: list[str], our_pref: str) -> str | None:
    """The mode both accept: the stronger of the two preferences when both allow it."""
    common = [m for m in MODES if m in theirs and m in ours]
    if not common:
        return None
    target = max(their_pref, our_pref, key=MODE_RANK.__getitem__)
    at_most = [m for m in common if MODE_RANK[m] <= MODE_RANK[target]]
    return at_most[-1] if at_most else common[0]


def choose(local: LocalEndpoint, hello: dict) -> tuple[str | None, bytes]:
    """Responder: pick the mode for an initiator's hello -> (mode or None, reply bytes)."""
    mode = negotiate(hello["modes"], hello["pref"], local.offered(), local.pref)
    if mode is None:
        return None, wire.pack_plain({"error": "mode_mismatch", "modes": local.offered(), "min": local.min})
    return mode, wire.pack_plain({"proto": wire.PROTOCOL, "v": wire.VERSION, "mode": mode,
                                  "modes": local.offered(), "min": local.min})


def mismatch_error(local_offer: list[str], local_min: str, peer_offer: list[str], peer_min: str,
                   peer: str = "the peer") -> PeerRequiresMode:
    """The message that says what the other side requires (and what to do)."""
    if not peer_offer or MODE_RANK[peer_min] > MODE_RANK[local_offer[-1]]:
        hint = ("import the shared network key with `covey crypto psk import FILE`"
                if peer_min == "symmetric" else f"run `covey crypto mode {peer_min}`")
        return PeerRequiresMode(
            f"{peer} requires at least {peer_min} encryption; this node offers only "
            f"{', '.join(local_offer)}: {hint}", required=peer_min)
    return PeerRequiresMode(
        f"this node requires at least {local_min} encryption but {peer} offers only "
        f"{', '.join(peer_offer)}", required=local_min)


def parse_choice(data: bytes, local: LocalEndpoint, peer: str = "the peer") -> str:
    """Initiator: read the responder's choice (or its refusal) -> mode."""
    reply = wire.unpack_plain(data)
    if reply.get("error") == "mode_mismatch":
        modes = reply.get("modes")
        theirs = [m for m in modes if isinstance(m, str) and m in MODE_RANK] if isinstance(modes, list) else []
        raw_min = reply.get("min")
        their_min = raw_min if isinstance(raw_min, str) and raw_min in MODE_RANK else "symmetric"
        raise mismatch_error(local.offered(), local.min, theirs, their_min, peer)
    if "error" in reply:
        raise HandshakeFailed(f"{peer} refused the connection: {str(reply.get('message', reply['error']))[:200]}")
    wire.check_version(reply)
    mode = reply.get("mode")
    if mode not in local.offered():
        raise HandshakeFailed(f"{peer} chose {mode!r}, which this node did not offer")
    return mode


class NoiseHandshake:
    """One side of a Noise XX handshake bound to the negotiation transcript."""

    def __init__(self, local: LocalEndpoint, mode: str, initiator: bool, hello: bytes, choice: bytes):
        self.local, self.mode, self.initiator = local, mode, initiator
        conn = NoiseConnection.from_name(NOISE_NAMES[mode])
        if mode == "symmetric":
            if not local.psk:
                raise HandshakeFailed("symmetric mode needs the network key")
            conn.set_psks(psks=[local.psk, local.psk])
        conn.set_as_initiator() if initiator else conn.set_as_responder()
        conn.set_keypair_from_private_bytes(Keypair.STATIC, local.static_private)
        conn.set_prologue(PROLOGUE_DOMAIN + len(hello).to_bytes(4, "big") + hello + choice)
        conn.start_handshake()
        self._conn = conn
        self._state = conn.noise_protocol.handshake_state  # keeps rs reachable after completion
        self.peer_id: str | None = None
        self.peer_name = ""

    def write(self, payload: bytes = b"") -> bytes:
        return bytes(self._conn.write_message(payload))

    def read(self, data: bytes) -> bytes:
        try:
            return bytes(self._conn.read_message(data))
        except (InvalidTag, NoiseInvalidMessage):
            if self.mode == "symmetric":
                from core.errors import NetworkKeyMismatch
                raise NetworkKeyMismatch(
                    "the handshake failed: the peer does not hold the same network key "
                    "(compare `covey crypto psk export` on both nodes)") from None
            raise HandshakeFailed("the handshake failed (corrupted or tampered handshake message)") from None
        except Exception as exc:  # noiseprotocol raises assorted errors on malformed input
            raise HandshakeFailed(f"malformed handshake message ({type(exc).__name__})") from None

    # -- the three messages, by role ------------------------------------------
    def initiator_step1(self) -> bytes:
        return self.write()

    def initiator_step2(self, msg2: bytes) -> bytes:
        try:
            payload = self.read(msg2)
        except HandshakeFailed:
            refused = _refusal(msg2)  # the responder refused (wrong network key) instead of answering
            if refused is None:
                raise
            raise refused from None
        self._check_identity(payload)
        return self.write(self.local.static_payload)

    def responder_step1(self, msg1: bytes) -> bytes:
        self.read(msg1)
        return self.write(self.local.static_payload)

    def responder_step2(self, msg3: bytes) -> None:
        self._check_identity(self.read(msg3))

    def _check_identity(self, payload: bytes) -> None:
        info = wire.unpack_plain(payload, 512)
        key, sig, name = info.get("id"), info.get("sig"), info.get("name", "")
        if not isinstance(key, bytes) or len(key) != 32 or not isinstance(sig, bytes) or len(sig) != 64:
            raise MalformedMessage("handshake identity payload malformed")
        if not isinstance(name, str) or len(name) > 64:
            raise MalformedMessage("handshake name invalid")
        static = self._state.rs.public_bytes
        try:
            VerifyKey(key).verify(STATIC_DOMAIN + static, sig)
        except (BadSignatureError, ValueError):
            raise InvalidSignature("the peer's identity signature over its handshake key does not verify") from None
        self.peer_id, self.peer_name = key.hex(), "".join(c for c in name if c.isprintable())

    def channel(self) -> "Channel":
        if not self._conn.handshake_finished:
            raise HandshakeFailed("handshake not finished")
        proto = self._conn.noise_protocol
        return Channel(self.mode, proto.cipher_state_encrypt.k, proto.cipher_state_decrypt.k)


class Channel:
    """Frame protection after the handshake: AES-256-GCM with counter nonces.

    In mode "none" frames travel in clear with a GCM tag over them (integrity,
    ordering and replay protection without confidentiality).
    """

    __slots__ = ("mode", "_send", "_recv", "_sn", "_rn", "_plain")

    def __init__(self, mode: str, send_key: bytes, recv_key: bytes):
        self.mode = mode
        self._send, self._recv = AESGCM(send_key), AESGCM(recv_key)
        self._sn = self._rn = 0
        self._plain = mode == "none"

    def seal(self, data: bytes) -> bytes:
        nonce = _NONCE.pack(self._sn)
        self._sn += 1
        if self._plain:
            return data + self._send.encrypt(nonce, b"", data)
        return self._send.encrypt(nonce, data, None)

    def open(self, frame: bytes) -> bytes:
        nonce = _NONCE.pack(self._rn)
        try:
            if self._plain:
                if len(frame) < TAG:
                    raise InvalidTag()
                data = frame[:-TAG]
                self._recv.decrypt(nonce, frame[-TAG:], data)
            else:
                data = self._recv.decrypt(nonce, frame, None)
        except InvalidTag:
            raise MalformedMessage("frame failed authentication (tampered, replayed or out of order)") from None
        self._rn += 1
        return data


def refusal(exc: Exception) -> bytes:
    """The plaintext ERROR a responder sends instead of message 2 (e.g. a wrong network key)."""
    return wire.pack_plain({"error": getattr(exc, "code", "handshake_failed"), "message": str(exc)[:300]})


def _refusal(msg2: bytes) -> Exception | None:
    """The typed error in a responder's plaintext refusal, or None if ``msg2`` is not one."""
    try:
        err = wire.unpack_plain(msg2, 1024)
    except Exception:  # random Noise bytes: not a refusal
        return None
    if not isinstance(err, dict) or not isinstance(err.get("error"), str):
        return None
    from core.errors import from_code
    return from_code(err["error"][:40], f"the peer refused the handshake: {str(err.get('message', ''))[:300]}")


def random_psk() -> bytes:
    return os.urandom(32)
