"""Secure aggregation with double masking (Bonawitz et al., CCS 2017), semi-honest coordinator.

The coordinator learns the sum of the surviving workers' (weighted) update
vectors and nothing about any single one, even when workers drop out after
they have sent their masked input. Everything that travels is bytes, ints,
strings, lists and dicts of those (msgpack-able); no Python objects. The
protocol layer that carries these messages signs them and binds them to the
round; this module does the cryptography and the bookkeeping.

Rounds (``W`` = every worker, ``C`` = coordinator)::

    0  W: advertise() -> {"c_pk", "s_pk"}                   C: add_advertisement(id, msg)
       C: roster() -> {id: {"c_pk", "s_pk"}}  (U1, sent to every worker in it)
    1  W: share_keys(roster) -> {recipient: blob}            C: add_shares(id, blobs)
       C: relay() -> {recipient: {sender: blob}}  (U2 = workers whose shares arrived)
       W: receive_shares(relay[my_id])
    2  W: masked_input(vec, weight) -> bytes                 C: add_masked_input(id, data)
       C: unmask_request() -> {"survivors": U3, "dropped": U2 - U3}
    3  W: unmask(survivors, dropped) -> {"b_shares": {id: share}, "s_shares": {id: share}}
                                                             C: add_unmask_response(id, msg)
       C: result() -> float32 sum of the survivors' weight * clip(vec)
          C.total_weight -> sum of the survivors' weights

How the masking works. Each worker ``u`` has two X25519 key pairs: ``c`` for
end-to-end encryption of its Shamir shares to the other workers (AEAD key
from HKDF(X25519(c_sk_u, c_pk_v))), and ``s`` for the pairwise masks. For
every other worker ``v`` in U2 it expands ``s_uv = HKDF(X25519(s_sk_u, s_pk_v))``
with AES-256-CTR into a mask it adds if ``u < v`` and subtracts otherwise, so
the pairwise masks cancel in the sum. It also adds a self mask expanded from
a private random seed ``b_u``. Both ``b_u`` and ``s_sk_u`` are Shamir-shared
(threshold ``t``) among U1 before masking. At unmasking, for a survivor the
others reveal shares of ``b_u`` (the coordinator removes its self mask); for a
worker that dropped after sharing they reveal shares of ``s_sk_u`` (the
coordinator recomputes and removes its pairwise masks). A worker never
reveals both kinds for one peer, across any number of requests.

Fixed point. Arithmetic is modulo 2^32, so cancellation is exact. A worker
contributes ``round(weight * clip(vec, -clip, clip) * scale)`` as a two's
complement int32, with ``0 <= weight <= 1`` (pass e.g. ``examples / cap`` for
FedAvg; the weight itself is summed in an extra coordinate). The sum of
``n`` contributions stays below 2^31 in magnitude as long as
``n * (max(clip, 1) * scale + 1) < 2^31``; :class:`SecAggParams` checks this for
``max_clients`` (defaults: scale 2^16, clip 16, 1000 clients ->
1000 * 2^20 ~ 1.05e9 < 2.15e9). Each contribution is off by at most
``0.5 / scale`` per coordinate (7.6e-6 with the defaults), the sum by
``n * 0.5 / scale``.
"""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from enum import Enum

import msgpack
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import BadRequest, CorruptShare, NotEnoughParticipants, UnmaskRefused
from core.learning import shamir

_PROTOCOL = b"covey/secagg/v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_MAX_BLOB_BYTES = 1024
_MAX_ID_CHARS = 256
_INT32_LIMIT = 2**31


@dataclass(frozen=True)
class SecAggParams:
    """What every participant of one secure-aggregation round must agree on.

    ``dim`` is the length of the update vector; ``threshold`` the number of
    shares needed to unmask (and the minimum number of survivors).
    """
    round_id: bytes
    threshold: int
    dim: int
    scale: float = 65536.0
    clip: float = 16.0
    max_clients: int = 1000

    def __post_init__(self):
        if not isinstance(self.round_id, bytes) or not 8 <= len(self.round_id) <= 64:
            raise BadRequest("round_id must be 8 to 64 bytes (use a fresh random value per round)")
        if not isinstance(self.threshold, int) or self.threshold < 2:
            raise BadRequest("threshold must be an integer of at least 2")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise BadRequest("dim must be a positive integer")
        if not (self.scale > 0 and self.clip > 0):
            raise BadRequest("scale and clip must be positive")
        # Each coordinate of a contribution is at most clip * scale (the weight word
        # at most scale), plus 0.5 of rounding.
        if self.max_clients * (max(self.clip, 1.0) * self.scale + 1) >= _INT32_LIMIT:
            raise BadRequest(
                f"the sum of {self.max_clients} clients could overflow 32-bit fixed point: "
                f"need max_clients * (max(clip, 1) * scale + 1) < 2^31; lower clip ({self.clip}) "
                f"or scale ({self.scale})")

    def to_dict(self) -> dict:
        """Msgpack-able form, to announce the round."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SecAggParams:
        """Inverse of :meth:`to_dict`, validating every field."""
        try:
            return cls(round_id=data["round_id"], threshold=data["threshold"], dim=data["dim"],
                       scale=float(data["scale"]), clip=float(data["clip"]),
                       max_clients=data["max_clients"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"malformed secure-aggregation parameters: {exc}") from exc


def default_threshold(participants: int) -> int:
    """The smallest strict majority of ``participants`` (and at least 2)."""
    return max(2, participants // 2 + 1)


# -- worker --------------------------------------------------------------------
class _Stage(Enum):
    NEW = 0
    ADVERTISED = 1
    SHARED = 2
    RECEIVED = 3
    MASKED = 4


class SecAggWorker:
    """One worker's side of a round. Create one per round; never reuse."""

    def __init__(self, my_id: str, params: SecAggParams):
        _check_id(my_id)
        self.my_id = my_id
        self.params = params
        self._c_sk = X25519PrivateKey.generate()
        self._s_sk = X25519PrivateKey.generate()
        self._b_seed = secrets.token_bytes(_KEY_BYTES)
        self._stage = _Stage.NEW
        self._roster: dict[str, dict] = {}
        self._index: dict[str, int] = {}
        # Shares other workers (and this one) dealt to this worker: peer -> (s_share, b_share).
        self._held: dict[str, tuple[bytes, bytes]] = {}
        self._revealed: dict[str, str] = {}    # peer -> "b" or "s", once revealed

    def advertise(self) -> dict:
        """Round 0: the two public keys, ``{"c_pk": bytes, "s_pk": bytes}``."""
        self._stage = _Stage.ADVERTISED
        return self._public_keys()

    def share_keys(self, roster: dict[str, dict]) -> dict[str, bytes]:
        """Round 1: Shamir-share ``b`` and ``s_sk``; one encrypted blob for every other worker."""
        self._require(_Stage.ADVERTISED, "share_keys")
        roster = _check_roster(roster, self.params)
        if roster.get(self.my_id) != self._public_keys():
            raise BadRequest("the roster does not carry this worker's own keys unchanged")
        self._roster = roster
        self._index = _indices(roster)
        count, t = len(roster), self.params.threshold
        s_shares = shamir.split(_private_bytes(self._s_sk), t, count)
        b_shares = shamir.split(self._b_seed, t, count)
        blobs = {}
        for peer, x in self._index.items():
            s_share, b_share = s_shares[x - 1], b_shares[x - 1]
            if peer == self.my_id:
                self._held[peer] = (s_share, b_share)
                continue
            key = self._share_key(peer)
            plaintext = msgpack.packb({"s": s_share, "b": b_share})
            nonce = secrets.token_bytes(_NONCE_BYTES)
            blobs[peer] = nonce + ChaCha20Poly1305(key).encrypt(
                nonce, plaintext, self._share_ad(self.my_id, peer))
        self._stage = _Stage.SHARED
        return blobs

    def receive_shares(self, blobs: dict[str, bytes]) -> None:
        """Round 1 (end): decrypt the blobs the coordinator relays, ``{sender: blob}``.

        The senders (plus this worker) form U2, the set masks are built
        against. A blob that fails authentication raises :class:`CorruptShare`
        naming its sender.
        """
        self._require(_Stage.SHARED, "receive_shares")
        if not isinstance(blobs, dict):
            raise BadRequest("relayed shares must be a map of sender id to blob")
        for sender, blob in blobs.items():
            if sender == self.my_id or sender not in self._roster:
                raise BadRequest(f"relayed share from {sender!r}, who is not another worker of the roster")
            if not isinstance(blob, bytes) or not _NONCE_BYTES < len(blob) <= _MAX_BLOB_BYTES:
                raise CorruptShare(f"the share blob from {sender!r} has an impossible size")
            self._held[sender] = self._open_blob(sender, blob)
        if len(self._held) < self.params.threshold:
            raise NotEnoughParticipants(
                f"only {len(self._held)} workers shared their keys; the threshold is {self.params.threshold}")
        self._stage = _Stage.RECEIVED

    def masked_input(self, vec: np.ndarray, weight: float = 1.0) -> bytes:
        """Round 2: ``weight * clip(vec)`` in fixed point plus all masks, as little-endian uint32 bytes.

        The result has ``dim + 1`` words; the last carries the weight.
        """
        self._require(_Stage.RECEIVED, "masked_input")
        y = quantize(vec, weight, self.params)
        y += expand_mask(_self_mask_key(self._b_seed, self.params.round_id), y.size)
        for peer in self._held:
            if peer == self.my_id:
                continue
            mask = expand_mask(self._pair_key(peer), y.size)
            if self.my_id < peer:
                y += mask
            else:
                y -= mask
        self._stage = _Stage.MASKED
        return y.astype("<u4", copy=False).tobytes()

    def unmask(self, survivors: list[str], dropped: list[str]) -> dict:
        """Round 3: reveal ``b`` shares of survivors and ``s_sk`` shares of dropped workers.

        Refuses (:class:`UnmaskRefused`) a request that lists a worker in both
        sets, contradicts an earlier request, calls this worker dropped, does
        not split U2 exactly, or leaves fewer survivors than the threshold.
        Returns ``{"b_shares": {id: share}, "s_shares": {id: share}}``.
        """
        self._require(_Stage.MASKED, "unmask")
        survivors_set, dropped_set = _id_set(survivors, "survivors"), _id_set(dropped, "dropped")
        both = survivors_set & dropped_set
        if both:
            raise UnmaskRefused(f"refusing to reveal both shares of {sorted(both)}: "
                                "that would expose their update")
        if self.my_id not in survivors_set:
            raise UnmaskRefused("the coordinator calls this worker dropped although it sent its masked input")
        if survivors_set | dropped_set != set(self._held):
            raise UnmaskRefused("survivors and dropped do not split the workers that shared keys")
        if len(survivors_set) < self.params.threshold:
            raise UnmaskRefused(f"only {len(survivors_set)} survivors; the threshold is "
                                f"{self.params.threshold}, so the sum would not hide single updates")
        wanted = {peer: "b" for peer in survivors_set} | {peer: "s" for peer in dropped_set}
        conflicts = sorted(p for p, kind in wanted.items() if self._revealed.get(p, kind) != kind)
        if conflicts:
            raise UnmaskRefused(f"already revealed the other kind of share for {conflicts}: "
                                "revealing both would expose their update")
        self._revealed.update(wanted)
        return {"b_shares": {p: self._held[p][1] for p in sorted(survivors_set)},
                "s_shares": {p: self._held[p][0] for p in sorted(dropped_set)}}

    # -- internals
    def _public_keys(self) -> dict:
        return {"c_pk": _public_bytes(self._c_sk), "s_pk": _public_bytes(self._s_sk)}

    def _require(self, stage: _Stage, step: str) -> None:
        if self._stage is not stage:
            raise BadRequest(f"secure aggregation step {step} is out of order "
                             f"(this worker is at {self._stage.name.lower()})")

    def _share_key(self, peer: str) -> bytes:
        peer_pk = X25519PublicKey.from_public_bytes(self._roster[peer]["c_pk"])
        return _kdf(self._c_sk.exchange(peer_pk), self.params.round_id,
                    b"share-encryption", _pair_info(self.my_id, peer))

    def _pair_key(self, peer: str) -> bytes:
        return pairwise_mask_key(self._s_sk, self._roster[peer]["s_pk"],
                                 self.my_id, peer, self.params.round_id)

    def _share_ad(self, sender: str, recipient: str) -> bytes:
        return msgpack.packb([_PROTOCOL, self.params.round_id, sender, recipient])

    def _open_blob(self, sender: str, blob: bytes) -> tuple[bytes, bytes]:
        try:
            plaintext = ChaCha20Poly1305(self._share_key(sender)).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._share_ad(sender, self.my_id))
        except InvalidTag as exc:
            raise CorruptShare(f"the share blob from {sender!r} failed authentication "
                               "(corrupted in transit or not addressed to this worker)") from exc
        try:
            msg = msgpack.unpackb(plaintext)
            s_share, b_share = msg["s"], msg["b"]
            mine = self._index[self.my_id]
            if shamir.share_index(s_share) != mine or shamir.share_index(b_share) != mine:
                raise BadRequest("share index does not match this worker")
        except (ValueError, KeyError, TypeError, BadRequest) as exc:
            raise CorruptShare(f"the share blob from {sender!r} does not hold valid shares: {exc}") from exc
        return s_share, b_share


# -- coordinator ---------------------------------------------------------------
class _Phase(Enum):
    ADVERTISE = 0
    SHARE = 1
    MASKED = 2
    UNMASK = 3


@dataclass
class _CoordinatorState:
    advertised: dict[str, dict] = field(default_factory=dict)
    roster: dict[str, dict] = field(default_factory=dict)
    shares: dict[str, dict[str, bytes]] = field(default_factory=dict)   # sender -> {recipient: blob}
    masked: dict[str, np.ndarray] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    responses: dict[str, dict] = field(default_factory=dict)


class SecAggCoordinator:
    """The coordinator's side of a round: collects, relays opaque blobs, and unmasks the sum.

    Each ``add_*`` call validates its message and raises ``BadRequest`` for
    an unknown sender, a duplicate, a wrong size or a call out of order. The
    closing calls (:meth:`roster`, :meth:`relay`, :meth:`unmask_request`)
    end a phase; late messages of a closed phase are refused.
    """

    def __init__(self, params: SecAggParams, participants: list[str]):
        ids = _id_set(participants, "participants")
        if len(ids) != len(participants):
            raise BadRequest("participants contain duplicates")
        if len(ids) > params.max_clients:
            raise BadRequest(f"{len(ids)} participants exceed max_clients={params.max_clients}")
        if not len(ids) / 2 < params.threshold <= len(ids):
            raise BadRequest(f"threshold {params.threshold} must be a strict majority of "
                             f"the {len(ids)} participants and at most their number")
        self.params = params
        self.participants = sorted(ids)
        self.total_weight: float | None = None
        self._phase = _Phase.ADVERTISE
        self._state = _CoordinatorState()

    # round 0
    def add_advertisement(self, worker_id: str, msg: dict) -> None:
        """Record a worker's ``{"c_pk", "s_pk"}``."""
        self._accept(_Phase.ADVERTISE, worker_id, self.participants, self._state.advertised)
        self._state.advertised[worker_id] = _check_keys(msg, worker_id)

    def roster(self) -> dict[str, dict]:
        """Close round 0: the map ``{id: {"c_pk", "s_pk"}}`` to send to every worker in it."""
        self._close(_Phase.ADVERTISE)
        state = self._state
        self._require_quorum(len(state.advertised), "advertised keys")
        state.roster = _check_roster(state.advertised, self.params)
        return dict(state.roster)

    # round 1
    def add_shares(self, worker_id: str, blobs: dict[str, bytes]) -> None:
        """Record a worker's encrypted share blobs, one for every other roster member."""
        self._accept(_Phase.SHARE, worker_id, self._state.roster, self._state.shares)
        expected = set(self._state.roster) - {worker_id}
        if not isinstance(blobs, dict) or set(blobs) != expected:
            raise BadRequest(f"{worker_id!r} must send exactly one share blob to each other roster member")
        for recipient, blob in blobs.items():
            if not isinstance(blob, bytes) or not _NONCE_BYTES < len(blob) <= _MAX_BLOB_BYTES:
                raise BadRequest(f"share blob from {worker_id!r} to {recipient!r} has an impossible size")
        self._state.shares[worker_id] = dict(blobs)

    def relay(self) -> dict[str, dict[str, bytes]]:
        """Close round 1: ``{recipient: {sender: blob}}`` for every worker whose shares arrived (U2)."""
        self._close(_Phase.SHARE)
        senders = sorted(self._state.shares)
        self._require_quorum(len(senders), "shared keys")
        return {r: {s: self._state.shares[s][r] for s in senders if s != r} for r in senders}

    # round 2
    def add_masked_input(self, worker_id: str, data: bytes) -> None:
        """Record a worker's masked vector (``4 * (dim + 1)`` bytes)."""
        self._accept(_Phase.MASKED, worker_id, self._state.shares, self._state.masked)
        size = 4 * (self.params.dim + 1)
        if not isinstance(data, bytes) or len(data) != size:
            raise BadRequest(f"masked input from {worker_id!r} must be {size} bytes")
        self._state.masked[worker_id] = np.frombuffer(data, dtype="<u4").astype(np.uint32)

    def unmask_request(self) -> dict:
        """Close round 2: ``{"survivors": [...], "dropped": [...]}`` to send to every survivor."""
        self._close(_Phase.MASKED)
        state = self._state
        self._require_quorum(len(state.masked), "masked inputs")
        state.survivors = sorted(state.masked)
        state.dropped = sorted(set(state.shares) - set(state.masked))
        return {"survivors": list(state.survivors), "dropped": list(state.dropped)}

    # round 3
    def add_unmask_response(self, worker_id: str, msg: dict) -> None:
        """Record a survivor's revealed shares ``{"b_shares": {...}, "s_shares": {...}}``."""
        state = self._state
        self._accept(_Phase.UNMASK, worker_id, state.survivors, state.responses)
        if not isinstance(msg, dict) or not isinstance(msg.get("b_shares"), dict) \
                or not isinstance(msg.get("s_shares"), dict):
            raise BadRequest(f"unmask response from {worker_id!r} is malformed")
        if set(msg["b_shares"]) != set(state.survivors) or set(msg["s_shares"]) != set(state.dropped):
            raise BadRequest(f"unmask response from {worker_id!r} does not answer the request")
        index = _indices(state.roster)[worker_id]
        for share in [*msg["b_shares"].values(), *msg["s_shares"].values()]:
            if shamir.share_index(share) != index:
                raise BadRequest(f"unmask response from {worker_id!r} carries a share that is not its own")
        state.responses[worker_id] = msg

    def result(self) -> np.ndarray:
        """The float32 sum of the survivors' ``weight * clip(vec)``; sets :attr:`total_weight`.

        Raises :class:`NotEnoughParticipants` if fewer than ``threshold``
        survivors answered the unmask request.
        """
        if self._phase is not _Phase.UNMASK:
            raise BadRequest("the unmask request has not been sent yet")
        state, t, round_id = self._state, self.params.threshold, self.params.round_id
        if len(state.responses) < t:
            raise NotEnoughParticipants(
                f"only {len(state.responses)} survivors revealed their shares; {t} are needed to unmask")
        total = np.zeros(self.params.dim + 1, dtype=np.uint32)
        for vec in state.masked.values():
            total += vec
        for worker in state.survivors:
            seed = shamir.combine([r["b_shares"][worker] for r in state.responses.values()], t)
            total -= expand_mask(_self_mask_key(seed, round_id), total.size)
        for gone in state.dropped:
            s_sk = self._recover_mask_key(gone)
            for worker in state.survivors:
                mask = expand_mask(pairwise_mask_key(s_sk, state.roster[worker]["s_pk"],
                                                     gone, worker, round_id), total.size)
                # The survivor added +mask if its id sorts first, else -mask: undo that.
                if worker < gone:
                    total -= mask
                else:
                    total += mask
        values = dequantize(total, self.params)
        self.total_weight = float(values[-1])
        return values[:-1]

    # -- internals
    def _recover_mask_key(self, worker: str) -> X25519PrivateKey:
        t = self.params.threshold
        secret = shamir.combine([r["s_shares"][worker] for r in self._state.responses.values()], t)
        key = X25519PrivateKey.from_private_bytes(secret)
        if _public_bytes(key) != self._state.roster[worker]["s_pk"]:
            raise BadRequest(f"the revealed shares do not rebuild {worker!r}'s mask key (corrupted shares)")
        return key

    def _accept(self, phase: _Phase, worker_id: str, allowed, seen: dict) -> None:
        if self._phase is not phase:
            raise BadRequest(f"secure aggregation message for phase {phase.name.lower()} arrived "
                             f"during phase {self._phase.name.lower()}")
        if worker_id not in allowed:
            raise BadRequest(f"{worker_id!r} is not a participant of this phase")
        if worker_id in seen:
            raise BadRequest(f"duplicate {phase.name.lower()} message from {worker_id!r}")

    def _close(self, phase: _Phase) -> None:
        if self._phase is not phase:
            raise BadRequest(f"phase {phase.name.lower()} is not open (now {self._phase.name.lower()})")
        self._phase = _Phase(phase.value + 1)

    def _require_quorum(self, count: int, what: str) -> None:
        if count < self.params.threshold:
            raise NotEnoughParticipants(
                f"only {count} workers {what}; secure aggregation needs at least "
                f"{self.params.threshold} (the threshold)")


# -- fixed point and masks -----------------------------------------------------
def quantize(vec: np.ndarray, weight: float, params: SecAggParams) -> np.ndarray:
    """``round(weight * clip(vec) * scale)`` as uint32 (two's complement), weight appended."""
    vec = np.asarray(vec)
    if vec.ndim != 1 or vec.size != params.dim:
        raise BadRequest(f"the update vector must be 1-D with {params.dim} values, got shape {vec.shape}")
    if not np.all(np.isfinite(vec)):
        raise BadRequest("the update vector contains NaN or infinity")
    if not 0.0 <= weight <= 1.0:
        raise BadRequest(f"weight must be in [0, 1], got {weight} (pass e.g. examples / cap)")
    values = np.empty(params.dim + 1, dtype=np.float64)
    np.clip(vec, -params.clip, params.clip, out=values[:-1])
    values[-1] = 1.0
    values *= weight * params.scale
    np.rint(values, out=values)
    return values.astype(np.int32).view(np.uint32)


def dequantize(total: np.ndarray, params: SecAggParams) -> np.ndarray:
    """Inverse of :func:`quantize` for a sum: uint32 words -> float32 values."""
    return (total.view(np.int32).astype(np.float64) / params.scale).astype(np.float32)


def expand_mask(key: bytes, words: int) -> np.ndarray:
    """``words`` uint32 values of AES-256-CTR keystream under ``key`` (a PRG; each key is used once).

    The array is read-only (a view of the keystream bytes); add it, don't modify it.
    """
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(4 * words))
    encryptor.finalize()
    return np.frombuffer(stream, dtype="<u4")


def pairwise_mask_key(own: X25519PrivateKey, peer_pk: bytes, me: str, peer: str,
                      round_id: bytes) -> bytes:
    """The PRG key both ``me`` and ``peer`` derive for their pairwise mask in this round."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_pk))
    return _kdf(shared, round_id, b"pairwise-mask", _pair_info(me, peer))


def _self_mask_key(seed: bytes, round_id: bytes) -> bytes:
    return _kdf(seed, round_id, b"self-mask", b"")


def _kdf(material: bytes, round_id: bytes, purpose: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=round_id,
                info=_PROTOCOL + b"/" + purpose + b"/" + info).derive(material)


def _pair_info(a: str, b: str) -> bytes:
    return msgpack.packb(sorted([a, b]))


# -- validation helpers --------------------------------------------------------
def _public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _check_id(worker_id) -> None:
    if not isinstance(worker_id, str) or not 0 < len(worker_id) <= _MAX_ID_CHARS:
        raise BadRequest(f"worker ids must be non-empty strings of at most {_MAX_ID_CHARS} characters")


def _id_set(ids, what: str) -> set[str]:
    if not isinstance(ids, (list, tuple)):
        raise BadRequest(f"{what} must be a list of worker ids")
    for worker_id in ids:
        _check_id(worker_id)
    return set(ids)


def _check_keys(msg, worker_id: str) -> dict:
    if not isinstance(msg, dict) or set(msg) != {"c_pk", "s_pk"}:
        raise BadRequest(f"advertisement of {worker_id!r} must be {{'c_pk', 's_pk'}}")
    for name in ("c_pk", "s_pk"):
        if not isinstance(msg[name], bytes) or len(msg[name]) != 32:
            raise BadRequest(f"{name} of {worker_id!r} must be a 32-byte X25519 public key")
    return {"c_pk": msg["c_pk"], "s_pk": msg["s_pk"]}


def _check_roster(roster, params: SecAggParams) -> dict[str, dict]:
    if not isinstance(roster, dict):
        raise BadRequest("the roster must be a map of worker id to keys")
    checked = {}
    for worker_id, keys in roster.items():
        _check_id(worker_id)
        checked[worker_id] = _check_keys(keys, worker_id)
    count = len(checked)
    if count > params.max_clients:
        raise BadRequest(f"the roster has {count} workers, more than max_clients={params.max_clients}")
    if not count / 2 < params.threshold <= count:
        raise NotEnoughParticipants(f"the roster has {count} workers; the threshold {params.threshold} "
                                    "must be a strict majority of them and at most their number")
    all_keys = [k for keys in checked.values() for k in keys.values()]
    if len(set(all_keys)) != len(all_keys):
        raise BadRequest("the roster repeats a public key")
    return checked


def _indices(roster: dict) -> dict[str, int]:
    """Shamir index of every worker: its 1-based position in sorted id order."""
    return {worker_id: i for i, worker_id in enumerate(sorted(roster), start=1)}
