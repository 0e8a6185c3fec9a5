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


def data_frame(seq: int, base: int, payload: bytes = b"", epoch: bytes = EPOCH) -> bytes:
    return b"d" + epoch + seq.to_bytes(8, "big") + base.to_bytes(8, "big") + payload


@pytest.mark.parametrize("frame, why", [
    (data_frame(0, 1), "'q'"),
    (data_frame(2 ** 63, 1), "'q'"),                                   # past MAX_SEQ
    (data_frame(3, 4), "'b'"),                                         # base above its own seq
    (data_frame(3, 0), "'b'"),
    (data_frame(1, 1)[:proto.DATA_HEAD - 1], "shorter"),               # a cut head
    (b"d", "shorter"),
])
def test_bad_data_frames_are_refused_by_name(frame, why):
    with pytest.raises(MalformedMessage, match=why):
        proto.decode_frame(frame)


def test_a_data_frame_is_its_head_then_the_content():
    frame = proto.encode_data(EPOCH, Data(7, b"payload", 1), 5)
    assert frame == data_frame(7, 5, b"payload")
    assert proto.decode_frame(data_frame(1, 1))[1][1].payload == b""   # empty content: refused above
    with pytest.raises(MessageTooLarge):
        proto.decode_frame(data_frame(1, 1, b"x" * proto.MAX_FRAME))
    with pytest.raises(ValueError):
        proto.encode_data(b"short", Data(1, b"", 1), 1)


@pytest.mark.parametrize("frame, why", [
    ({"k": "d", "e": EPOCH, "q": 1, "b": 1, "p": b""}, "unknown chat frame"),   # data is not a map
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
    assert proto.check_text("x" * proto.MAX_TEXT) == "x" * proto.MAX_TEXT       # bytes, not characters
    assert proto.check_text("é" * (proto.MAX_TEXT // 2)) == "é" * (proto.MAX_TEXT // 2)
    with pytest.raises(MessageTooLarge):
        proto.check_text("x" * (proto.MAX_TEXT + 1))
    for blank in ("", " ", " \t\n ", "\u2003\u3000"):                    # ASCII and Unicode spaces
        with pytest.raises(MalformedMessage, match="empty"):
            proto.check_text(blank)
    assert proto.check_text(" \u2003a ") == " \u2003a "
    with pytest.raises(MalformedMessage, match="valid Unicode"):
        proto.check_text("lone \ud800 surrogate")
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
