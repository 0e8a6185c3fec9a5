"""The pinned noiseprotocol library and our transport Channel against the Noise test vectors.

The vectors in ``data/noise_vectors.json`` are the Cacophony entries for the two protocol
names the handshake uses (haskell-cryptography/cacophony ``vectors/cacophony.txt``, as
vendored in plizonczyk/noiseprotocol ``tests/vectors/cacophony.txt``), copied unchanged.
Each vector fixes both sides' static and ephemeral keys, so every byte on the wire is
determined: a library that drifts from the Noise specification (or a transport layer that
frames differently) fails here before it fails against another implementation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from noise.connection import Keypair, NoiseConnection

from core.errors import MalformedMessage
from core.net.handshake import NOISE_NAMES, Channel

_DATA = json.loads((Path(__file__).parent / "data" / "noise_vectors.json").read_text())
VECTORS = {v["protocol_name"]: v for v in _DATA["vectors"]}
XX_MESSAGES = 3  # -> e; <- e, ee, s, es; -> s, se (psk0 adds its psk token to the first, psk3 to the third)
# The Channel mode that runs each protocol with encrypted frames ("none" sends frames in clear).
CHANNEL_MODE = {b"Noise_XX_25519_AESGCM_SHA256": "asymmetric",
                b"Noise_XXpsk0+psk3_25519_AESGCM_SHA256": "symmetric"}


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


def _side(vector: dict, prefix: str) -> NoiseConnection:
    """One party of the vector with its fixed static and ephemeral keys."""
    conn = NoiseConnection.from_name(vector["protocol_name"].encode())
    conn.set_as_initiator() if prefix == "init" else conn.set_as_responder()
    conn.set_prologue(_hex(vector[f"{prefix}_prologue"]))
    if f"{prefix}_psks" in vector:
        conn.set_psks(psks=[_hex(p) for p in vector[f"{prefix}_psks"]])
    conn.set_keypair_from_private_bytes(Keypair.STATIC, _hex(vector[f"{prefix}_static"]))
    conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, _hex(vector[f"{prefix}_ephemeral"]))
    # The library warns whenever an ephemeral key is preset: only a test may do that.
    with pytest.warns(UserWarning, match="ephemeral"):
        conn.start_handshake()
    return conn


@dataclass
class Run:
    """What the two library connections produced while replaying one vector."""
    initiator: NoiseConnection
    responder: NoiseConnection
    handshake_messages: int = 0
    sent: list[bytes] = field(default_factory=list)      # ciphertext each sender produced
    received: list[bytes] = field(default_factory=list)  # plaintext each receiver recovered
    split_keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # side -> (send, recv)


def _replay(vector: dict) -> Run:
    """Drive initiator and responder through every message of the vector, alternating senders."""
    run = Run(_side(vector, "init"), _side(vector, "resp"))
    for i, message in enumerate(vector["messages"]):
        sender, receiver = (run.initiator, run.responder) if i % 2 == 0 else (run.responder, run.initiator)
        payload = _hex(message["payload"])
        if not sender.handshake_finished:
            run.handshake_messages += 1
            wire = bytes(sender.write_message(payload))
            run.received.append(bytes(receiver.read_message(wire)))
            if run.initiator.handshake_finished and run.responder.handshake_finished:
                run.split_keys = {
                    side: (conn.noise_protocol.cipher_state_encrypt.k, conn.noise_protocol.cipher_state_decrypt.k)
                    for side, conn in (("init", run.initiator), ("resp", run.responder))}
        else:
            wire = sender.encrypt(payload)
            run.received.append(receiver.decrypt(wire))
        run.sent.append(wire)
    return run


def _transport(vector: dict, run: Run) -> list[tuple[int, str, bytes, bytes]]:
    """(index, sending side, payload, ciphertext) of every message after the handshake."""
    return [(i, "init" if i % 2 == 0 else "resp", _hex(m["payload"]), _hex(m["ciphertext"]))
            for i, m in enumerate(vector["messages"]) if i >= run.handshake_messages]


@pytest.fixture(params=sorted(VECTORS), ids=lambda name: name)
def vector(request) -> dict:
    return VECTORS[request.param]


def test_vectors_cover_every_noise_protocol_the_handshake_uses():
    assert {name.decode() for name in NOISE_NAMES.values()} <= set(VECTORS)
    assert set(CHANNEL_MODE) == set(NOISE_NAMES.values())


def test_library_completes_the_xx_handshake_in_three_messages(vector):
    run = _replay(vector)
    assert run.handshake_messages == XX_MESSAGES
    assert run.initiator.handshake_finished and run.responder.handshake_finished
    assert len(vector["messages"]) > XX_MESSAGES  # the vector also exercises transport messages


def test_library_handshake_messages_equal_the_vector_byte_for_byte(vector):
    run = _replay(vector)
    for i in range(run.handshake_messages):
        assert run.sent[i].hex() == vector["messages"][i]["ciphertext"], f"handshake message {i + 1}"
        assert run.received[i].hex() == vector["messages"][i]["payload"], f"handshake payload {i + 1}"


def test_library_handshake_hash_equals_the_vector(vector):
    if "handshake_hash" not in vector:
        pytest.skip("snow's vectors publish no handshake hash; their transport messages pin the keys")
    run = _replay(vector)
    assert run.initiator.get_handshake_hash().hex() == vector["handshake_hash"]
    assert run.responder.get_handshake_hash().hex() == vector["handshake_hash"]


def test_library_transport_messages_equal_the_vector_byte_for_byte(vector):
    run = _replay(vector)
    transport = _transport(vector, run)
    assert transport, "vector has no transport messages"
    for i, side, payload, ciphertext in transport:
        assert run.sent[i] == ciphertext, f"transport message {i + 1} from {side}"
        assert run.received[i] == payload, f"transport payload {i + 1} from {side}"


def test_both_sides_split_into_mirrored_32_byte_keys(vector):
    run = _replay(vector)
    init_send, init_recv = run.split_keys["init"]
    resp_send, resp_recv = run.split_keys["resp"]
    assert (init_send, init_recv) == (resp_recv, resp_send)
    assert len(init_send) == len(init_recv) == 32 and init_send != init_recv


def test_channel_seals_transport_messages_exactly_as_the_vector(vector):
    """Our AES-256-GCM frames (4 zero bytes + 64-bit big-endian counter nonce) are Noise transport messages."""
    run = _replay(vector)
    mode = CHANNEL_MODE[vector["protocol_name"].encode()]
    channels = {side: Channel(mode, *keys) for side, keys in run.split_keys.items()}
    for i, side, payload, ciphertext in _transport(vector, run):
        assert channels[side].seal(payload) == ciphertext, f"transport message {i + 1} from {side}"


def test_channel_opens_the_vector_transport_messages(vector):
    run = _replay(vector)
    mode = CHANNEL_MODE[vector["protocol_name"].encode()]
    channels = {side: Channel(mode, *keys) for side, keys in run.split_keys.items()}
    for i, side, payload, ciphertext in _transport(vector, run):
        receiver = channels["resp" if side == "init" else "init"]
        assert receiver.open(ciphertext) == payload, f"transport message {i + 1} from {side}"


def test_channel_rejects_a_vector_transport_message_with_one_bit_flipped(vector):
    run = _replay(vector)
    mode = CHANNEL_MODE[vector["protocol_name"].encode()]
    _, side, _, ciphertext = _transport(vector, run)[0]
    receiver = Channel(mode, *run.split_keys["resp" if side == "init" else "init"])
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(MalformedMessage):
        receiver.open(tampered)
