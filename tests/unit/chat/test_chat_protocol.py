"""The chat frames and contents: round trips, and every field of bad input refused by name."""
from __future__ import annotations

import msgpack
import pytest

from core.chat import protocol as proto
from core.chat.delivery import Ack, Data
from core.errors import MalformedMessage, MessageTooLarge

EPOCH = b"e" * proto.EPOCH


def test_frames_round_trip():
    kind, (epoch, data, base) = proto.decode_frame(proto.encode_data(EPOCH, Data(7, b"payload", 3), 5))
    assert (kind, epoch, data.seq, data.payload, base) == ("d", EPOCH, 7, b"payload", 5)
    kind, (epoch, ack) = proto.decode_frame(proto.encode_ack(EPOCH, Ack(4, (6, 8), 2)))
    assert (kind, ack) == ("a", Ack(4, (6, 8), 2))
    assert proto.decode_frame(proto.encode_typing(True)) == ("t", proto.Typing(True))


def test_contents_round_trip():
    text = proto.Content(proto.TEXT, "héllo", 1700000000.5, 30)
    assert proto.decode_content(proto.encode_content(text)) == text
    assert proto.decode_content(proto.encode_content(proto.Content(proto.TIMER, ttl=3600))).ttl == 3600
    assert proto.decode_content(proto.encode_content(proto.Content(proto.CLOSE))).kind == "close"
    grouped = proto.Content(proto.TEXT, "hi all", 1.0, 0, group="g1")
    assert proto.decode_content(proto.encode_content(grouped)).group == "g1"


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


@pytest.mark.parametrize("frame, why", [
    ({"k": "d", "e": EPOCH, "q": 0, "b": 1, "p": b""}, "'q'"),
    ({"k": "d", "e": EPOCH, "q": 3, "b": 4, "p": b""}, "'b'"),          # base above its own seq
    ({"k": "d", "e": b"short", "q": 1, "b": 1, "p": b""}, "epoch"),
    ({"k": "d", "e": EPOCH, "q": 1, "b": 1, "p": "text"}, "payload"),
    ({"k": "a", "e": EPOCH, "u": -1, "s": [], "r": None}, "'u'"),
    ({"k": "a", "e": EPOCH, "u": 1, "s": "x", "r": None}, "selective"),
    ({"k": "t", "on": 1}, "boolean"),
    ({"k": "zz"}, "unknown chat frame"),
    ([1, 2], "map"),
])
def test_bad_frames_are_refused_by_name(frame, why):
    with pytest.raises(MalformedMessage, match=why):
        proto.decode_frame(pack(frame))


def test_oversized_and_garbage_frames():
    with pytest.raises(MessageTooLarge):
        proto.decode_frame(b"\x80" * (proto.MAX_FRAME + 1))
    with pytest.raises(MalformedMessage):
        proto.decode_frame(b"\xc1\xc1")


@pytest.mark.parametrize("content, why", [
    ({"c": "text", "text": "", "ts": 1.0, "ttl": 0}, "empty"),
    ({"c": "text", "text": "hi", "ts": float("nan"), "ttl": 0}, "timestamp"),
    ({"c": "text", "text": "hi", "ts": 1.0, "ttl": 31}, "timer"),
    ({"c": "text", "text": "hi", "ts": 1.0, "ttl": True}, "timer"),
    ({"c": "text", "text": 5, "ts": 1.0, "ttl": 0}, "text"),
    ({"c": "timer", "ttl": 7}, "timer"),
    ({"c": "wat"}, "unknown chat content"),
    ({"c": "close", "g": ""}, "group"),
])
def test_bad_contents_are_refused_by_name(content, why):
    with pytest.raises(MalformedMessage, match=why):
        proto.decode_content(pack(content))


def test_text_and_request_bounds():
    with pytest.raises(MessageTooLarge):
        proto.check_text("é" * (proto.MAX_TEXT // 2 + 1))
    assert proto.clean_request_text("  hello there  ") == "hello there"
    with pytest.raises(MessageTooLarge):
        proto.clean_request_text("x" * (proto.MAX_REQUEST_TEXT + 1))
    with pytest.raises(MalformedMessage, match="one non-empty line"):
        proto.clean_request_text("two\nlines")


def test_transport_bodies():
    assert proto.parse_msg({"s": b"s" * 8, "w": b"w"}) == (b"s" * 8, b"w")
    with pytest.raises(MalformedMessage, match="session id"):
        proto.parse_msg({"s": b"s", "w": b"w"})
    with pytest.raises(MessageTooLarge):
        proto.parse_msg({"s": b"s" * 8, "w": b"w" * (proto.MAX_WIRE + 1)})
    with pytest.raises(MalformedMessage):
        proto.parse_reset({"s": "not bytes"})


def test_timer_names():
    assert [proto.parse_timer(n) for n in ("off", "30s", "5m", "1h", "1d")] == [0, 30, 300, 3600, 86400]
    with pytest.raises(MalformedMessage, match="off, 30s, 5m, 1h, 1d"):
        proto.parse_timer("2h")
