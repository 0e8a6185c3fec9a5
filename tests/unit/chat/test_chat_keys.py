"""X3DH keys: signed bundles, the prekey file (and nothing else) on disk, rotation."""
from __future__ import annotations

import json
import os
import stat

import pytest

from core.identity import Identity
from core.signed import seal
from core.chat.errors import BadBundle, CorruptPrekeyFile
from core.chat.session import Session
from core.chat.x3dh_adapter import PREKEY_FILE, PREKEY_TARGET, ChatKeys, verify_bundle

from chat_helpers import Peer, open_pair


@pytest.fixture
def peers(tmp_path):
    return Peer(tmp_path, "alice"), Peer(tmp_path, "bob"), Peer(tmp_path, "carol")


def test_x3dh_identity_is_the_node_identity(peers):
    a, b, _ = peers
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    assert bundle.peer == b.id and bundle.x3dh.identity_key == b.identity.public_bytes
    assert len(bundle.x3dh.pre_keys) == 1


async def test_memoised_bundle_equals_the_librarys(peers):
    import x3dh
    a, b, _ = peers
    await open_pair(a, b)   # a prekey used and refilled
    state = b.keys._state
    assert state.bundle == x3dh.BaseState.bundle.fget(state)
    assert len(state.bundle.pre_keys) == PREKEY_TARGET


def _resealed(signer: Identity, envelope: dict, **changes) -> dict:
    return seal(signer, "chat-bundle", {**envelope["body"], **changes})


@pytest.mark.parametrize("case", ["spk_sig", "spk", "envelope_sig", "body_after_signing",
                                  "other_signer", "not_for_me", "ik_not_signer", "extra_field",
                                  "short_opk", "wrong_kind", "not_a_map"])
def test_bad_bundles_are_refused(peers, case):
    a, b, c = peers
    env = b.keys.bundle_for(a.id)
    body = env["body"]
    flip = lambda raw: bytes([raw[0] ^ 1]) + raw[1:]  # noqa: E731
    if case == "spk_sig":            # B's own envelope over a bad prekey signature
        env = _resealed(b.identity, env, spk_sig=flip(body["spk_sig"]))
    elif case == "spk":
        env = _resealed(b.identity, env, spk=flip(body["spk"]))
    elif case == "envelope_sig":
        env = {**env, "sig": flip(env["sig"])}
    elif case == "body_after_signing":
        env = {**env, "body": {**body, "opk": flip(body["opk"])}}
    elif case == "other_signer":     # carol re-signs bob's bundle
        env = _resealed(c.identity, env)
    elif case == "not_for_me":
        env = b.keys.bundle_for(c.id)
    elif case == "ik_not_signer":    # bob's envelope carrying carol's identity key
        env = _resealed(b.identity, env, ik=c.identity.public_bytes)
    elif case == "extra_field":
        env = _resealed(b.identity, env, extra=1)
    elif case == "short_opk":
        env = _resealed(b.identity, env, opk=b"x" * 31)
    elif case == "wrong_kind":
        env = seal(b.identity, "knowledge", body)
    elif case == "not_a_map":
        env = [env]
    with pytest.raises(BadBundle):
        verify_bundle(env, b.id, a.id)


def test_each_peer_gets_its_own_one_time_prekey_until_it_uses_it(peers):
    a, b, c = peers
    opk = lambda env: env["body"]["opk"]  # noqa: E731
    first = b.keys.bundle_for(a.id)
    assert opk(b.keys.bundle_for(a.id)) == opk(first)
    assert opk(b.keys.bundle_for(c.id)) != opk(first)
    assert opk(b.reload().bundle_for(a.id)) == opk(first)  # the reservation survives a restart


async def test_used_prekey_is_replaced_and_persisted(peers):
    a, b, _ = peers
    opk = b.keys.bundle_for(a.id)["body"]["opk"]
    version = b.keys.version
    await open_pair(a, b)
    assert b.keys.version > version
    assert b.keys.bundle_for(a.id)["body"]["opk"] != opk
    doc = json.loads((b.home / PREKEY_FILE).read_text())
    assert len(doc["prekeys"]) == PREKEY_TARGET


def test_prekey_file_is_private_and_holds_no_identity_seed(peers):
    a, b, _ = peers
    path = b.home / PREKEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    seed = bytes(b.identity.signing_key)
    for form in (seed, seed.hex().encode(), "".join(map(chr, seed)).encode("utf-8")):
        assert form not in raw


def test_corrupt_or_foreign_prekey_file_is_refused(peers):
    a, b, _ = peers
    path = b.home / PREKEY_FILE
    good = path.read_bytes()
    with pytest.raises(CorruptPrekeyFile):   # the file of another identity
        ChatKeys.load_or_create(b.home, a.identity)
    doc = json.loads(good)
    variants = [b"{not json", b"[]", json.dumps({**doc, "format": 9}).encode(),
                json.dumps({**doc, "prekeys": [{"priv": "zz", "for": None}]}).encode(),
                json.dumps({**doc, "spk": {**doc["spk"], "sig": "00" * 64}}).encode(),
                json.dumps({**doc, "spk": {**doc["spk"], "ts": "soon"}}).encode(),
                b" " * (300 * 1024)]
    for raw in variants:
        path.write_bytes(raw)
        with pytest.raises(CorruptPrekeyFile):
            ChatKeys.load_or_create(b.home, b.identity)
    path.write_bytes(good)
    assert ChatKeys.load_or_create(b.home, b.identity).id == b.id


async def test_bundle_from_before_a_rotation_still_starts_a_session(peers):
    a, b, _ = peers
    old = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    path = b.home / PREKEY_FILE
    doc = json.loads(path.read_text())
    doc["spk"]["ts"] -= 30 * 24 * 3600            # as if the signed prekey were a month old
    path.write_text(json.dumps(doc))
    keys = b.reload()                              # rotates on load, keeps the old one a period
    new = verify_bundle(keys.bundle_for(a.id), b.id, a.id)
    assert new.x3dh.signed_pre_key != old.x3dh.signed_pre_key
    _, wire = await Session.initiate(a.keys, b.id, old, b"old bundle")
    _, text = await Session.accept(keys, a.id, wire)
    assert text == b"old bundle"
    assert keys.maintain() is False                # nothing due right after a rotation


async def test_nothing_but_the_prekey_file_reaches_the_home(tmp_path):
    a, b = Peer(tmp_path, "alice"), Peer(tmp_path, "bob")
    b.identity.save(b.home)
    marker = b"MARKER-7f3a9c-do-not-persist"
    sa, sb = await open_pair(a, b, first=marker + b" first")
    await sb.decrypt(await sa.encrypt(b"x"))
    await sa.encrypt(b"skipped")                   # leaves a skipped message key in B
    for i in range(5):
        assert await sb.decrypt(await sa.encrypt(marker + b" %d" % i)) == marker + b" %d" % i
        assert await sa.decrypt(await sb.encrypt(marker + b" back %d" % i)) == marker + b" back %d" % i
    from doubleratchet import DoubleRatchet
    secrets = set()
    for session in (sa, sb):
        state = DoubleRatchet.model.fget(session._ratchet)
        dh = state.diffie_hellman_ratchet
        sym = dh.symmetric_key_ratchet
        secrets |= {dh.own_ratchet_priv, dh.root_chain.key, sym.receiving_chain.key, sym.sending_chain.key}
        secrets |= {k.message_key for k in state.skipped_message_keys}
    assert any(k for k in secrets) and len(secrets) >= 8
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["alice/chat_prekeys.json", "bob/chat_prekeys.json", "bob/identity.key", "bob/identity.pub"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert marker not in raw and marker.hex().encode() not in raw
            for secret in secrets:
                for form in (secret, secret.hex().encode(), "".join(map(chr, secret)).encode("utf-8")):
                    assert form not in raw, f"ratchet key material in {path}"
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and stat.S_IMODE(os.stat(p).st_mode) & 0o077
                and p.name != "identity.pub"]
