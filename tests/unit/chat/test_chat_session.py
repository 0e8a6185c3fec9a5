"""Double-ratchet sessions over X3DH: round trips, bounds and every refusal."""
from __future__ import annotations

import asyncio
import copy
import pickle
import random
import struct

import pytest

from core.errors import MalformedMessage, MessageTooLarge, UnsupportedVersion
from core.chat.errors import (DecryptFailed, ForgedSender, KeyAgreementFailed, NewSession,
                              ReplayedMessage, SessionClosed, TooManySkipped, UnknownSession)
from core.chat.ratchet import MAX_PLAINTEXT, MAX_SKIP, decode, encode
from core.chat.session import Session
from core.chat.x3dh_adapter import verify_bundle

from chat_helpers import Peer, open_pair


@pytest.fixture
def peers(tmp_path):
    return Peer(tmp_path, "alice"), Peer(tmp_path, "bob"), Peer(tmp_path, "carol")


_HEAD = struct.Struct(">BB32sII")   # the wire's fixed head: version, flags, ratchet key, pn, n


def _fields(wire: bytes) -> list:
    """A message's fields: [version, x3dh header or None, ratchet key, pn, n, ciphertext]."""
    version, flags, pub, pn, n = _HEAD.unpack_from(wire)
    rest = wire[_HEAD.size:]
    head, ct = (rest[:128], rest[128:]) if flags & 1 else (None, rest)
    return [version, head, pub, pn, n, ct]


def _wire(fields: list, flags: int | None = None) -> bytes:
    version, head, pub, pn, n, ct = fields
    flags = (0 if head is None else 1) if flags is None else flags
    return _HEAD.pack(version, flags, pub, pn, n) + (head or b"") + ct


def _flip(wire: bytes, field: int, index: int = -1) -> bytes:
    """The same message with one byte of one field changed."""
    items = _fields(wire)
    value = bytearray(items[field])
    value[index] ^= 0x01
    items[field] = bytes(value)
    return _wire(items)


async def test_round_trip_both_ways_across_ratchet_turns(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    for turn in range(10):
        for i in range(3):  # a burst from each side, then the other answers
            text = f"a->b {turn}.{i}".encode()
            assert await sb.decrypt(await sa.encrypt(text)) == text
        text = f"b->a {turn}".encode()
        assert await sa.decrypt(await sb.encrypt(text)) == text
    assert await sb.decrypt(await sa.encrypt(b"")) == b""
    big = bytes(range(256)) * (MAX_PLAINTEXT // 256)
    assert await sa.decrypt(await sb.encrypt(big)) == big


async def test_out_of_order_within_the_skip_bound(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    wires = [await sa.encrypt(f"m{i}".encode()) for i in range(60)]
    order = list(range(60))
    random.Random(7).shuffle(order)
    got = {i: await sb.decrypt(wires[i]) for i in order}
    assert got == {i: f"m{i}".encode() for i in range(60)}


async def test_message_skipping_more_than_the_bound_is_refused_and_state_kept(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    wires = [await sa.encrypt(f"m{i}".encode()) for i in range(MAX_SKIP + 2)]
    with pytest.raises(TooManySkipped):
        await sb.decrypt(wires[-1])
    assert await sb.decrypt(wires[0]) == b"m0"
    assert await sb.decrypt(wires[MAX_SKIP]) == f"m{MAX_SKIP}".encode()  # now within the bound


@pytest.mark.parametrize("field", [5, 2], ids=["ciphertext", "ratchet-key"])
async def test_tampered_message_is_refused_and_the_original_still_opens(peers, field):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    wire = await sa.encrypt(b"pay 10")
    with pytest.raises(DecryptFailed):
        await sb.decrypt(_flip(wire, field))
    assert await sb.decrypt(wire) == b"pay 10"


async def test_tampered_counter_is_refused(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    wire = await sa.encrypt(b"x")
    items = _fields(wire)
    items[4] += 1
    with pytest.raises(DecryptFailed):
        await sb.decrypt(_wire(items))
    assert await sb.decrypt(wire) == b"x"


async def test_replayed_message_is_refused(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    first, second = await sa.encrypt(b"one"), await sa.encrypt(b"two")
    assert await sb.decrypt(second) == b"two"
    assert await sb.decrypt(first) == b"one"      # late, from a skipped key
    for wire in (first, second):                  # replay of a skipped-key and an in-order message
        with pytest.raises(ReplayedMessage):
            await sb.decrypt(wire)
    reply = await sb.encrypt(b"ok")
    assert await sa.decrypt(reply) == b"ok"
    with pytest.raises((ReplayedMessage, DecryptFailed)):
        await sa.decrypt(reply)


async def test_forged_sender_is_refused_by_the_associated_data(peers):
    a, b, c = peers
    sa, sb = await open_pair(a, b)
    wire = await sa.encrypt(b"from alice")
    sb._peer = c.id           # B believes the message came from carol
    with pytest.raises(DecryptFailed):
        await sb.decrypt(wire)
    sb._peer = a.id
    assert await sb.decrypt(wire) == b"from alice"  # the refusal changed nothing


async def test_initial_message_under_another_senders_name_is_refused(peers):
    a, b, c = peers
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    _, wire = await Session.initiate(a.keys, b.id, bundle, b"hi")
    with pytest.raises(ForgedSender):
        await Session.accept(b.keys, c.id, wire)
    _, text = await Session.accept(b.keys, a.id, wire)  # the prekey was not burnt
    assert text == b"hi"


async def test_message_from_another_conversation_is_refused(peers):
    a, b, c = peers
    _, sb = await open_pair(a, b)
    sc, sbc = await open_pair(c, b)
    await sc.decrypt(await sbc.encrypt(b"hi carol"))  # carol stops attaching her X3DH header
    with pytest.raises(DecryptFailed):
        await sb.decrypt(await sc.encrypt(b"carol"))


async def test_replayed_initial_message_is_refused_after_the_session_closed(peers):
    a, b, _ = peers
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    _, wire = await Session.initiate(a.keys, b.id, bundle, b"hi")
    sb, _ = await Session.accept(b.keys, a.id, wire)
    sb.wipe()
    with pytest.raises(KeyAgreementFailed):
        await Session.accept(b.keys, a.id, wire)
    with pytest.raises(KeyAgreementFailed):   # and after a restart too: the used prekey is gone from disk
        await Session.accept(b.reload(), a.id, wire)


async def test_tampered_initial_message_does_not_burn_the_prekey(peers):
    a, b, _ = peers
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    _, wire = await Session.initiate(a.keys, b.id, bundle, b"hi")
    with pytest.raises(DecryptFailed):
        await Session.accept(b.keys, a.id, _flip(wire, 5))
    _, text = await Session.accept(b.keys, a.id, wire)
    assert text == b"hi"


async def test_restarted_recipient_opens_what_was_sent_while_it_was_down(peers):
    a, b, _ = peers
    envelope = b.keys.bundle_for(a.id)   # published to A before B shut down
    b.keys = None                        # B is down: nothing of it in memory
    bundle = verify_bundle(envelope, b.id, a.id)
    sa, first = await Session.initiate(a.keys, b.id, bundle, b"while you were out")
    later = [await sa.encrypt(f"and {i}".encode()) for i in range(3)]
    keys = b.reload()
    sb, text = await Session.accept(keys, a.id, first)
    assert text == b"while you were out"
    assert [await sb.decrypt(w) for w in later] == [b"and 0", b"and 1", b"and 2"]
    assert await sa.decrypt(await sb.encrypt(b"back")) == b"back"


async def test_session_starts_from_a_later_message_if_the_first_is_lost(peers):
    a, b, _ = peers
    bundle = verify_bundle(b.keys.bundle_for(a.id), b.id, a.id)
    sa, first = await Session.initiate(a.keys, b.id, bundle, b"one")
    second = await sa.encrypt(b"two")
    sb, text = await Session.accept(b.keys, a.id, second)
    assert text == b"two"
    assert await sb.decrypt(first) == b"one"
    assert await sa.decrypt(await sb.encrypt(b"hi")) == b"hi"
    assert decode(await sa.encrypt(b"three")).x3dh is None  # header dropped after the reply


async def test_other_x3dh_header_raises_new_session_and_plain_message_is_not_initial(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    await sa.decrypt(await sb.encrypt(b"reply"))  # alice stops attaching her X3DH header
    sa2, wire2 = await Session.initiate(a.keys, b.id, verify_bundle(b.keys.bundle_for(a.id), b.id, a.id),
                                        b"again")
    with pytest.raises(NewSession):
        await sb.decrypt(wire2)
    with pytest.raises(UnknownSession):
        await Session.accept(b.keys, a.id, await sa.encrypt(b"plain"))
    sb2, text = await Session.accept(b.keys, a.id, wire2)
    assert text == b"again" and sb2.session_id != sb.session_id


async def test_concurrent_decrypts_on_one_session_all_commit(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    wires = [await sa.encrypt(f"m{i}".encode()) for i in range(40)]
    random.Random(3).shuffle(wires)
    texts = await asyncio.gather(*(sb.decrypt(w) for w in wires))
    assert sorted(texts) == sorted(f"m{i}".encode() for i in range(40))
    for wire in wires:  # a lost state update would let some of these decrypt a second time
        with pytest.raises((ReplayedMessage, DecryptFailed)):
            await sb.decrypt(wire)
    assert await sa.decrypt(await sb.encrypt(b"after")) == b"after"


async def test_a_ratchet_step_that_would_suspend_is_refused_and_changes_nothing(peers, monkeypatch):
    """Session operations run to their end in one call (nothing else can interleave with a
    decrypt and lose its state update): a library await that really suspended is refused."""
    from core.chat.ratchet import AesGcm
    plain_decrypt = AesGcm.decrypt

    async def yielding_decrypt(ciphertext, key, associated_data):
        await asyncio.sleep(0)  # a real await: another decrypt could run mid-way
        return await plain_decrypt(ciphertext, key, associated_data)

    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    await sa.encrypt(b"skipped")       # so the next one takes the library's path (a skipped key;
    wire = await sa.encrypt(b"kept")   # the next message of a chain never awaits anything)
    monkeypatch.setattr(AesGcm, "decrypt", staticmethod(yielding_decrypt))
    with pytest.raises(RuntimeError, match="suspended"):
        await sb.decrypt(wire)
    monkeypatch.setattr(AesGcm, "decrypt", staticmethod(plain_decrypt))
    assert await sb.decrypt(wire) == b"kept"   # the refused attempt committed nothing


async def test_wipe_leaves_no_key_material_reachable(peers):
    from doubleratchet import DoubleRatchet
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    await sb.decrypt(await sa.encrypt(b"x"))
    await sa.encrypt(b"skipped")
    await sb.decrypt(await sa.encrypt(b"y"))      # leaves one skipped message key in sb
    dump = DoubleRatchet.model.fget(sb._ratchet).model_dump()  # test-only peek past the guard
    assert dump["skipped_message_keys"]
    secrets = _bytes_in(dump) | {sb._x3dh_ad}
    secrets = {s for s in secrets if len(s) >= 16}
    assert len(secrets) >= 5
    sb.wipe()
    reachable = _reachable_bytes(sb)
    assert not secrets & reachable
    with pytest.raises(SessionClosed):
        await sb.encrypt(b"z")
    with pytest.raises(SessionClosed):
        await sb.decrypt(await sa.encrypt(b"z"))


async def test_sessions_and_ratchets_cannot_be_exported(peers):
    a, b, _ = peers
    sa, _ = await open_pair(a, b)
    for target in (sa, sa._ratchet, a.keys):
        with pytest.raises(TypeError):
            pickle.dumps(target)
        with pytest.raises(TypeError):
            copy.deepcopy(target)
    for attr in ("model", "json"):
        with pytest.raises(TypeError):
            getattr(sa._ratchet, attr)
    assert not any(hasattr(sa, name) for name in ("save", "dump", "to_json", "model", "json"))


async def test_oversized_and_malformed_messages_are_refused(peers):
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    with pytest.raises(MessageTooLarge):
        await sa.encrypt(b"x" * (MAX_PLAINTEXT + 1))
    good = _fields(await sa.encrypt(b"ok"))
    bad = {"empty": b"", "a cut head": _wire(good)[:_HEAD.size - 1],
           "ciphertext too short": _wire(good[:5] + [b"short"]),
           "no ciphertext": _wire(good[:5] + [b""]),
           "unknown flags": _wire(good, flags=0x02),
           "flagged X3DH header cut short": _wire([good[0], None, *good[2:5], b"h" * 100], flags=0x01)}
    for why, wire in bad.items():
        with pytest.raises(MalformedMessage):
            await sb.decrypt(wire)
        assert why
    for version in (0, 1, 3, 0x96):    # 1 and 0x96 (a msgpack array): the earlier format
        with pytest.raises(UnsupportedVersion):
            await sb.decrypt(_wire([version] + good[1:]))
    with pytest.raises(MessageTooLarge):
        await sb.decrypt(b"\x00" * (MAX_PLAINTEXT + 4096))
    with pytest.raises(DecryptFailed):   # anything after the ciphertext is part of it: it fails the tag
        await sb.decrypt(_wire(good) + b"trailing")
    assert await sb.decrypt(_wire(good)) == b"ok"


def test_wire_format_round_trips():
    from doubleratchet import Header
    from core.chat.ratchet import X3DHHead
    head = X3DHHead(b"i" * 32, b"e" * 32, b"s" * 32, b"o" * 32)
    for x3dh_head in (None, head):
        wire = encode(x3dh_head, Header(b"r" * 32, 3, 9), b"c" * 40)
        msg = decode(wire)
        assert msg.x3dh == x3dh_head and msg.header == Header(b"r" * 32, 3, 9) and msg.ciphertext == b"c" * 40
        assert _fields(wire) == [2, None if x3dh_head is None else x3dh_head.pack(), b"r" * 32, 3, 9, b"c" * 40]
    with pytest.raises(ValueError):
        encode(None, Header(b"r" * 31, 3, 9), b"c" * 40)


def _bytes_in(obj) -> set[bytes]:
    """Every bytes value in a model dump (the library dumps bytes as latin-1 text)."""
    if isinstance(obj, (bytes, bytearray)):
        return {bytes(obj)}
    if isinstance(obj, str):
        return {obj.encode("latin-1")} if all(ord(ch) < 256 for ch in obj) else set()
    if isinstance(obj, dict):
        return set().union(*(_bytes_in(v) for v in obj.values()), set())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return set().union(*(_bytes_in(v) for v in obj), set())
    return set()


def _reachable_bytes(root) -> set[bytes]:
    """Every bytes object reachable from ``root`` through instance dicts and containers."""
    import gc
    import types
    seen, found, stack = set(), set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray)):
            found.add(bytes(obj))
            continue
        stack.extend(gc.get_referents(obj))
    return found


def _objects(obj, path=()):
    """(path, object) of every non-class object in the ratchet's state tree, ``obj`` first."""
    yield path, obj
    for key, value in vars(obj).items():
        if hasattr(value, "__dict__") and not isinstance(value, type):
            yield from _objects(value, path + (key,))


@pytest.mark.parametrize("fast", [True, False])
async def test_ratchet_state_copy_is_deep_and_equal(tmp_path, monkeypatch, fast):
    """The faster deep copy of the DH ratchet (taken on every decrypt) shares no object of the
    state tree with the original and serialises to the same state; so does the generic copy
    taken if the library's layout ever changes."""
    from core.chat.ratchet import CopyingDH, _layout_is
    a, b = Peer(tmp_path, "a"), Peer(tmp_path, "b")
    sa, sb = await open_pair(a, b)
    await sa.decrypt(await sb.encrypt(b"reply"))
    dh = sa._ratchet._DoubleRatchet__diffie_hellman_ratchet
    assert isinstance(dh, CopyingDH)
    assert _layout_is(dh)                  # the installed library has the layout the fast copy knows
    monkeypatch.setattr(CopyingDH, "_layout_checked", fast)
    clone = copy.deepcopy(dh)
    assert clone.model == dh.model
    originals = dict(_objects(dh))
    copies = dict(_objects(clone))
    assert copies.keys() == originals.keys() and len(copies) >= 4   # dh, root, symmetric, a chain
    for path, obj in copies.items():
        assert obj is not originals[path] and type(obj) is type(originals[path]), path
    await clone.next_encryption_key()      # advancing the clone leaves the original alone
    assert clone.model != dh.model


def test_ratchet_layout_check_refuses_other_layouts(tmp_path):
    from core.chat.ratchet import _layout_is
    a, b = Peer(tmp_path, "a"), Peer(tmp_path, "b")
    sa, _ = asyncio.run(open_pair(a, b))
    dh = copy.deepcopy(sa._ratchet._DoubleRatchet__diffie_hellman_ratchet)
    dh.__dict__["_DiffieHellmanRatchet__extra"] = []          # an attribute it does not know
    assert not _layout_is(dh)
    del dh.__dict__["_DiffieHellmanRatchet__extra"]
    skr = dh.__dict__["_DiffieHellmanRatchet__symmetric_key_ratchet"]
    skr.__dict__["_SymmetricKeyRatchet__constant"] = bytearray(b"\x02\x01")   # a mutable leaf
    assert not _layout_is(dh)


async def test_dh_ratchet_key_memo_matches_the_library():
    """The ratchet's memoised key object gives the library's public halves and shared secrets."""
    from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import DiffieHellmanRatchet

    from core.chat.ratchet import CopyingDH
    dh = object.__new__(CopyingDH)
    other = DiffieHellmanRatchet._generate_priv()
    other_pub = DiffieHellmanRatchet._derive_pub(other)
    for _ in range(3):
        priv = dh._generate_priv()
        assert dh._derive_pub(priv) == DiffieHellmanRatchet._derive_pub(priv)
        assert dh._perform_diffie_hellman(priv, other_pub) == \
            DiffieHellmanRatchet._perform_diffie_hellman(priv, other_pub) == \
            DiffieHellmanRatchet._perform_diffie_hellman(other, DiffieHellmanRatchet._derive_pub(priv))
    stranger = DiffieHellmanRatchet._generate_priv()      # not the memoised key: parsed afresh
    assert dh._derive_pub(stranger) == DiffieHellmanRatchet._derive_pub(stranger)
    assert dh._perform_diffie_hellman(stranger, other_pub) == \
        DiffieHellmanRatchet._perform_diffie_hellman(stranger, other_pub)


async def test_message_kdf_derives_the_same_bytes_as_the_library():
    """Our HMAC message-chain KDF (pads hashed once per key) is a drop-in for the library's."""
    import os

    from doubleratchet.recommended import kdf_separate_hmacs

    from core.chat.ratchet import MessageKDF

    class LibraryKDF(kdf_separate_hmacs.KDF):
        _get_hash_function = staticmethod(MessageKDF._get_hash_function)

    for size in (16, 32, 64, 65, 100):      # shorter, equal to and longer than SHA-256's block
        for data in (b"\x02\x01", b"\x01", b"\x07\x00\xff"):
            key = os.urandom(size)
            assert await MessageKDF.derive(key, data, 32 * len(data)) == \
                await LibraryKDF.derive(key, data, 32 * len(data))
    with pytest.raises(ValueError):
        await MessageKDF.derive(os.urandom(32), b"\x02\x01", 32)


class _LibraryDecrypt:
    """Ratchet with the library's own encrypt and decrypt transactions (the ones Ratchet replaces)."""

    @staticmethod
    def make():
        from doubleratchet import DoubleRatchet

        from core.chat.ratchet import Ratchet

        class LibraryRatchet(Ratchet):
            encrypt_message = DoubleRatchet.encrypt_message
            decrypt_message = DoubleRatchet.decrypt_message
        return LibraryRatchet


async def _ratchet_pair(cls):
    import os

    from core.chat.ratchet import PARAMS, CopyingDH
    secret, spk_priv = os.urandom(32), CopyingDH._generate_priv(object.__new__(CopyingDH))
    spk_pub = CopyingDH._derive_pub(object.__new__(CopyingDH), spk_priv)
    alice, first = await cls.encrypt_initial_message(*PARAMS, secret, spk_pub, b"hi", b"ad")
    bob, text = await cls.decrypt_initial_message(*PARAMS, secret, spk_priv, first, b"ad")
    assert text == b"hi"
    return alice, bob


def _stored(ratchet) -> int:
    return len(ratchet._DoubleRatchet__skipped_message_keys)


@pytest.mark.parametrize("seed", range(12))
async def test_decrypt_transaction_behaves_as_the_librarys(seed):
    """Loss, reordering, duplicates, tampering and DH turns in both directions: our encrypt and
    decrypt transactions (their fast paths included) number messages, accept and refuse exactly
    as the library's do, and keep as many skipped keys (the bound included: some runs skip more
    than MAX_SKIP in all)."""
    from doubleratchet import EncryptedMessage

    from core.chat.ratchet import Ratchet
    rnd = random.Random(seed)
    ours, theirs = await _ratchet_pair(Ratchet), await _ratchet_pair(_LibraryDecrypt.make())
    for turn in range(8):
        sender = turn % 2
        burst = rnd.choice([1, 5, 40, 400])
        sent = [[], []]
        for i in range(burst):
            for pair, out in ((ours, sent[0]), (theirs, sent[1])):
                out.append(await pair[sender].encrypt_message(b"m%d" % i, b"ad"))
            assert sent[0][-1].header[1:] == sent[1][-1].header[1:]   # chain lengths (keys are random)
        order = [i for i in range(burst) if rnd.random() > 0.3]          # the rest is lost
        rnd.shuffle(order)
        order += rnd.sample(order, min(3, len(order)))                   # and some come twice
        for i in order:
            tamper = rnd.random() < 0.05
            outcome = []
            for pair, out in ((ours, sent[0]), (theirs, sent[1])):
                msg = out[i]
                if tamper:
                    msg = EncryptedMessage(msg.header, msg.ciphertext[:-1] + bytes([msg.ciphertext[-1] ^ 1]))
                try:
                    outcome.append(await pair[1 - sender].decrypt_message(msg, b"ad"))
                except Exception as exc:  # the library's refusals, compared by type
                    outcome.append(type(exc))
            assert outcome[0] == outcome[1]
            assert _stored(ours[1 - sender]) == _stored(theirs[1 - sender]) <= MAX_SKIP


async def test_decrypt_keeps_the_skipped_key_store_in_place():
    """The library rebuilt the store of skipped keys on every decrypt (O(stored keys) a message:
    a few cuts leave hundreds); ours keeps the one store and drops the oldest past the bound."""
    from core.chat.ratchet import Ratchet
    alice, bob = await _ratchet_pair(Ratchet)
    for _ in range(300):
        await alice.encrypt_message(b"lost", b"ad")
    await bob.decrypt_message(await alice.encrypt_message(b"after the cut", b"ad"), b"ad")
    store = bob._DoubleRatchet__skipped_message_keys
    assert len(store) == 300
    for _ in range(5):
        await bob.decrypt_message(await alice.encrypt_message(b"more", b"ad"), b"ad")
    assert bob._DoubleRatchet__skipped_message_keys is store and len(store) == 300
    for _ in range(MAX_SKIP):                                   # more than the bound in all
        await alice.encrypt_message(b"lost", b"ad")
    await bob.decrypt_message(await alice.encrypt_message(b"late", b"ad"), b"ad")
    assert bob._DoubleRatchet__skipped_message_keys is store and len(store) == MAX_SKIP


async def test_skipped_keys_are_dropped_after_their_time(monkeypatch):
    """A message lost in a cut leaves its key among the skipped ones; it opens a late copy for
    SKIPPED_TTL seconds, then it is gone (forward secrecy: the retransmission travels anew)."""
    from doubleratchet import DuplicateMessageException

    import core.chat.ratchet as ratchet_mod
    from core.chat.ratchet import SKIPPED_TTL, Ratchet
    alice, bob = await _ratchet_pair(Ratchet)
    late = [await alice.encrypt_message(b"lost %d" % i, b"ad") for i in range(3)]
    await bob.decrypt_message(await alice.encrypt_message(b"after the cut", b"ad"), b"ad")
    assert _stored(bob) == 3
    assert await bob.decrypt_message(late[0], b"ad") == b"lost 0"     # in time: opens
    assert _stored(bob) == 2
    assert bob.next_skipped_expiry() > ratchet_mod.time.monotonic() + SKIPPED_TTL - 60
    monkeypatch.setattr(ratchet_mod, "SKIPPED_TTL", 0.0)                # their time has come
    with pytest.raises(DuplicateMessageException):                    # its key is gone
        await bob.decrypt_message(late[1], b"ad")
    assert _stored(bob) == 0 and bob.next_skipped_expiry() is None
    assert await bob.decrypt_message(await alice.encrypt_message(b"goes on", b"ad"), b"ad") == b"goes on"


async def test_an_idle_sessions_skipped_keys_expire_without_another_message(peers):
    """The same without another message: ChatService.sweep (its expiry loop, at least every
    SKIPPED_SWEEP seconds) asks each link to expire its sessions' keys (Session.expire_skipped)."""
    import time as time_mod

    from core.chat.ratchet import SKIPPED_TTL
    a, b, _ = peers
    sa, sb = await open_pair(a, b)
    late = [await sa.encrypt(b"lost %d" % i) for i in range(4)]
    await sb.decrypt(await sa.encrypt(b"after the cut"))
    assert sb.expire_skipped(time_mod.monotonic()) == 0                # not yet
    assert sb.expire_skipped(time_mod.monotonic() + SKIPPED_TTL + 1) == 4
    with pytest.raises(ReplayedMessage):
        await sb.decrypt(late[2])
    sb.wipe()
    assert sb.expire_skipped(time_mod.monotonic()) == 0
