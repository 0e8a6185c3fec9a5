"""LAN discovery: signed multicast beacons, validated, rate-limited, expiring.

Everything here runs on loopback only: the nodes join the group on
127.0.0.1, and the test's own sender uses IP_MULTICAST_IF=127.0.0.1 and
TTL 1. Each test picks a random free port, never the default 8103.
"""
from __future__ import annotations

import asyncio
import math
import os
import socket
import sys
import time

import msgpack
import pytest

from core.net.discovery import (
    BEACON_VERSION,
    DEFAULT_GROUP,
    MAX_DATAGRAM,
    Beacon,
    Discovery,
    decode_beacon,
    encode_beacon,
)
from core.errors import (
    InvalidSignature,
    MalformedMessage,
    MessageTooLarge,
    StaleMessage,
    UnsupportedVersion,
)
from core.identity import Identity

LOOPBACK = "127.0.0.1"
DOMAIN = b"covey/v1/beacon\0"  # from the wire spec, written out independently of the module


# -- helpers ---------------------------------------------------------------------
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@pytest.fixture
def group_port() -> int:
    return free_udp_port()


def craft(identity, *, port=7000, sign_with=None, after_sign=None, drop=(), **overrides) -> bytes:
    """A beacon built from the wire spec, optionally broken in one way."""
    fields = {"v": 1, "id": identity.id, "name": identity.name, "port": port,
              "fp": identity.fingerprint, "ts": time.time(), "nonce": os.urandom(16)}
    fields.update(overrides)
    body = msgpack.packb(dict(sorted(fields.items())), use_bin_type=True)
    fields["sig"] = (sign_with or identity).sign(DOMAIN + body)
    fields.update(after_sign or {})
    for key in drop:
        del fields[key]
    return msgpack.packb(fields, use_bin_type=True)


class LoopbackSender:
    """A test-owned socket that sends datagrams to the group on loopback only (TTL 1)."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        self.sock.bind((LOOPBACK, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (DEFAULT_GROUP, self.port))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sender(group_port):
    senders = []

    def make() -> LoopbackSender:
        senders.append(LoopbackSender(group_port))
        return senders[-1]

    yield make
    for s in senders:
        s.close()


async def wait_until(predicate, timeout: float = 15.0) -> None:
    """Poll until ``predicate()`` is true; fail (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


def node(identity, group_port, listen_port=9000, **kw) -> Discovery:
    kw.setdefault("interval", 0.2)
    return Discovery(identity, listen_port, port=group_port, interface=LOOPBACK, **kw)


@pytest.fixture
async def listener(group_port):
    """A node that beacons rarely (so its rate window stays put) and records what it finds."""
    found: list[Beacon] = []
    disc = node(Identity.generate("listener"), group_port, interval=60.0, on_found=found.append)
    await disc.start()
    disc.found = found
    yield disc
    await disc.stop()


# -- finding each other ------------------------------------------------------------
async def test_two_nodes_find_each_other_with_id_name_port_and_fingerprint(group_port):
    alice, bob = Identity.generate("alice"), Identity.generate("bob")
    seen_by_alice: list[Beacon] = []
    seen_by_bob: list[Beacon] = []
    a = node(alice, group_port, 9101, on_found=seen_by_alice.append)
    b = node(bob, group_port, 9102, on_found=seen_by_bob.append)
    async with a, b:
        await wait_until(lambda: seen_by_alice and seen_by_bob)
        assert [(x.id, x.name, x.port, x.fingerprint, x.host) for x in seen_by_alice] == [
            (bob.id, "bob", 9102, bob.fingerprint, LOOPBACK)]
        assert [(x.id, x.name, x.port, x.fingerprint, x.host) for x in seen_by_bob] == [
            (alice.id, "alice", 9101, alice.fingerprint, LOOPBACK)]
        assert [p.id for p in a.peers()] == [bob.id]
        assert [p.id for p in b.peers()] == [alice.id]
        assert a.rejected == 0 and b.rejected == 0


async def test_a_node_hears_its_own_beacons_but_does_not_list_itself(group_port):
    disc = node(Identity.generate("solo"), group_port, interval=0.05)
    async with disc:
        await wait_until(lambda: disc.heard_self >= 2)
        assert disc.peers() == []
        assert disc.rejected == 0


async def test_a_node_that_goes_quiet_expires_and_on_lost_fires(group_port):
    lost: list[str] = []
    found: list[Beacon] = []
    watcher = node(Identity.generate("watcher"), group_port, interval=0.1, expire_after=0.4,
                   on_found=found.append, on_lost=lost.append)
    leaver_identity = Identity.generate("leaver")
    leaver = node(leaver_identity, group_port, interval=0.1)
    async with watcher:
        async with leaver:
            await wait_until(lambda: found)
            assert [p.id for p in watcher.peers()] == [leaver_identity.id]
        await wait_until(lambda: lost)
        assert lost == [leaver_identity.id]
        assert watcher.peers() == []


async def test_stop_closes_down_and_a_restarted_node_is_found_again(group_port):
    found: list[Beacon] = []
    watcher = node(Identity.generate("watcher"), group_port, on_found=found.append)
    other = node(Identity.generate("other"), group_port)
    async with watcher:
        await other.start()
        await wait_until(lambda: len(found) == 1)
        await other.stop()
        assert not other.running and other.peers() == []
        await other.stop()  # idempotent
        await other.start()
        await wait_until(lambda: other.peers())
        assert [p.id for p in other.peers()] == [watcher.identity.id]
        await other.stop()


async def test_a_failing_callback_does_not_break_discovery(group_port, sender):
    def broken(_beacon):
        raise RuntimeError("listener bug")

    disc = node(Identity.generate("x"), group_port, interval=60.0, on_found=broken)
    peer = Identity.generate("peer")
    async with disc:
        sender().send(craft(peer))
        await wait_until(lambda: disc.peers())
        assert [p.id for p in disc.peers()] == [peer.id]


async def test_a_peer_that_moves_port_is_reported_again(listener, sender):
    peer = Identity.generate("mover")
    out = sender()
    out.send(craft(peer, port=7001))
    out.send(craft(peer, port=7002))
    await wait_until(lambda: len(listener.found) == 2)
    assert [b.port for b in listener.found] == [7001, 7002]
    assert [p.port for p in listener.peers()] == [7002]


# -- rejecting bad datagrams on the wire ------------------------------------------
TRUSTED = Identity.generate("trusted")
ATTACKER = Identity.generate("attacker")

BAD_DATAGRAMS = {
    "forged signature": (lambda: craft(TRUSTED, sign_with=ATTACKER), "invalid_signature"),
    "tampered port": (lambda: craft(TRUSTED, after_sign={"port": 6666}), "invalid_signature"),
    "tampered name": (lambda: craft(TRUSTED, after_sign={"name": "bank"}), "invalid_signature"),
    "replayed old timestamp": (lambda: craft(TRUSTED, ts=time.time() - 600), "stale"),
    "timestamp from the future": (lambda: craft(TRUSTED, ts=time.time() + 600), "stale"),
    "oversized datagram": (lambda: craft(TRUSTED, nonce=os.urandom(16), pad=b"x" * MAX_DATAGRAM), "too_large"),
    "garbage bytes": (lambda: os.urandom(200), "malformed"),
    "wrong version": (lambda: craft(TRUSTED, v=2), "unsupported_version"),
}


@pytest.mark.parametrize("kind", list(BAD_DATAGRAMS))
async def test_a_bad_datagram_is_counted_and_ignored_while_a_good_beacon_gets_through(kind, listener, sender):
    make_bad, reason = BAD_DATAGRAMS[kind]
    good = Identity.generate("good")
    out = sender()
    out.send(make_bad())
    out.send(craft(good, port=7100))  # same socket: arrives after the bad one
    await wait_until(lambda: listener.found)
    assert [(b.id, b.port) for b in listener.found] == [(good.id, 7100)]
    assert [p.id for p in listener.peers()] == [good.id]
    assert listener.rejected == 1
    assert dict(listener.rejected_reasons) == {reason: 1}


async def test_an_exact_replay_of_a_beacon_is_rejected(listener, sender):
    peer = Identity.generate("peer")
    datagram = craft(peer)
    out = sender()
    out.send(datagram)
    out.send(datagram)
    out.send(craft(Identity.generate("marker")))
    await wait_until(lambda: len(listener.found) == 2)
    assert dict(listener.rejected_reasons) == {"replay": 1}


async def test_a_beacon_older_than_the_last_one_from_that_node_is_rejected(listener, sender):
    peer = Identity.generate("peer")
    now = time.time()
    out = sender()
    out.send(craft(peer, ts=now))
    out.send(craft(peer, ts=now - 5))
    out.send(craft(Identity.generate("marker")))
    await wait_until(lambda: len(listener.found) == 2)
    assert dict(listener.rejected_reasons) == {"replay": 1}
    assert [p.ts for p in listener.peers() if p.id == peer.id] == [now]


async def test_a_flood_from_one_source_is_cut_off_but_other_sources_get_through(group_port, sender):
    found: list[Beacon] = []
    disc = node(Identity.generate("x"), group_port, interval=60.0, max_per_source=4, on_found=found.append)
    good = Identity.generate("good")
    async with disc:
        flooder = sender()
        for _ in range(20):
            flooder.send(b"\xc1 not msgpack")
        sender().send(craft(good))
        await wait_until(lambda: found and disc.rejected == 20)
        assert dict(disc.rejected_reasons) == {"malformed": 4, "rate_limited": 16}
        assert [b.id for b in found] == [good.id]


# -- decoding, without the network ----------------------------------------------------
def test_encode_then_decode_round_trips_with_the_source_address_as_host():
    ident = Identity.generate("round trip")
    beacon, nonce = decode_beacon(encode_beacon(ident, 8102), "192.0.2.7")
    assert (beacon.id, beacon.name, beacon.host, beacon.port, beacon.fingerprint) == (
        ident.id, "round trip", "192.0.2.7", 8102, ident.fingerprint)
    assert len(nonce) == 16
    assert abs(beacon.ts - time.time()) < 60


def test_encoded_beacon_follows_the_wire_spec():
    ident = Identity.generate("spec")
    fields = msgpack.unpackb(encode_beacon(ident, 8102, ts=1234.5, nonce=b"n" * 16), raw=False)
    assert set(fields) == {"v", "id", "name", "port", "fp", "ts", "nonce", "sig"}
    assert fields["v"] == BEACON_VERSION == 1
    signed = DOMAIN + msgpack.packb({k: fields[k] for k in sorted(fields) if k != "sig"}, use_bin_type=True)
    from core.identity import verify
    verify(ident.id, signed, fields["sig"])  # raises if the signature does not cover the spec bytes


def test_long_or_unprintable_names_are_cleaned_before_they_go_on_the_wire():
    ident = Identity.generate("n\x00" + "a" * 100)
    beacon, _ = decode_beacon(encode_beacon(ident, 8102), LOOPBACK)
    assert beacon.name == "n" + "a" * 63


MALFORMED = {
    "name too long": dict(name="a" * 65),
    "name with control character": dict(name="bad\nname"),
    "port zero": dict(port=0),
    "port too high": dict(port=70000),
    "port as bool": dict(port=True),
    "port as string": dict(port="8102"),
    "id uppercase": dict(id=TRUSTED.id.upper()),
    "id too short": dict(id=TRUSTED.id[:62]),
    "short nonce": dict(nonce=b"x" * 15),
    "nonce as string": dict(nonce="x" * 16),
    "timestamp as string": dict(ts="now"),
    "timestamp NaN": dict(ts=math.nan),
    "extra field": dict(host="203.0.113.9"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_beacon_with_a_bad_field_is_malformed(kind):
    with pytest.raises(MalformedMessage):
        decode_beacon(craft(TRUSTED, **MALFORMED[kind]), LOOPBACK)


def test_a_beacon_with_a_missing_field_is_malformed():
    with pytest.raises(MalformedMessage):
        decode_beacon(craft(TRUSTED, drop=("nonce",)), LOOPBACK)


def test_a_beacon_whose_fingerprint_is_not_its_ids_is_rejected():
    with pytest.raises(Exception) as caught:
        decode_beacon(craft(TRUSTED, fp=ATTACKER.fingerprint), LOOPBACK)
    assert caught.value.code == "fingerprint_mismatch"


@pytest.mark.parametrize("data", [
    b"", b"\x93\x01\x02\x03", msgpack.packb([1, 2]), msgpack.packb({"v": "1"}),
    msgpack.packb({"v": 1}) + b"trailing", msgpack.packb({1: 2}),
    msgpack.packb({"v": 1, "ts": msgpack.ExtType(5, b"x")}),
])
def test_non_beacon_msgpack_is_malformed(data):
    with pytest.raises(MalformedMessage):
        decode_beacon(data, LOOPBACK)


def test_decode_reports_typed_errors_for_each_failure():
    with pytest.raises(MessageTooLarge):
        decode_beacon(b"\x00" * (MAX_DATAGRAM + 1), LOOPBACK)
    with pytest.raises(UnsupportedVersion):
        decode_beacon(craft(TRUSTED, v=7), LOOPBACK)
    with pytest.raises(StaleMessage):
        decode_beacon(craft(TRUSTED, ts=1000.0), LOOPBACK)
    with pytest.raises(InvalidSignature):
        decode_beacon(craft(TRUSTED, sign_with=ATTACKER), LOOPBACK)


# -- configuration --------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    dict(group="10.0.0.1"), dict(group="not an address"), dict(port=0), dict(interval=0),
    dict(expire_after=-1), dict(interface="eth0"), dict(advertise_host="example.org"),
])
def test_bad_settings_are_refused_with_a_clear_error(kwargs):
    with pytest.raises(ValueError):
        Discovery(TRUSTED, 8102, **kwargs)


def test_a_node_must_announce_a_real_listen_port():
    with pytest.raises(ValueError):
        Discovery(TRUSTED, 0)


def test_expiry_defaults_to_three_intervals():
    assert Discovery(TRUSTED, 8102, interval=2.0).expire_after == 6.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs 127.0.0.2 on lo (Linux routes all of 127/8 there)")
async def test_advertise_host_is_the_source_address_peers_record(group_port):
    found: list[Beacon] = []
    watcher = node(Identity.generate("watcher"), group_port, on_found=found.append)
    # 127.0.0.2 is a loopback address too (all of 127/8 is on lo), so this stays local.
    advertiser = node(Identity.generate("adv"), group_port, 9400, advertise_host="127.0.0.2")
    async with watcher, advertiser:
        await wait_until(lambda: found)
        assert [(b.name, b.host, b.port) for b in found] == [("adv", "127.0.0.2", 9400)]
