"""The message envelope on the wire: what decodes, and the clear error for what does not."""
from __future__ import annotations

import msgpack
import pytest

from core.net import wire
from core.errors import MalformedMessage, MessageTooLarge


def packed(**fields) -> bytes:
    base = {"t": "echo", "i": 1, "ts": 1.0, "b": {}}
    base.update(fields)
    return msgpack.packb({k: v for k, v in base.items() if v is not ...}, use_bin_type=True)


def test_round_trip_keeps_type_id_body_and_reply_id():
    data = wire.encode(wire.Message("chat.send", {"x": b"\x00\x01"}, id=42, reply_to=7))
    msg = wire.decode(data, 1 << 20)
    assert (msg.type, msg.id, msg.body, msg.reply_to) == ("chat.send", 42, {"x": b"\x00\x01"}, 7)


@pytest.mark.parametrize("fields, message", [
    ({"t": ["not", "a", "string"]}, "type"),   # unhashable values must not crash the decoder
    ({"t": {"a": 1}}, "type"),
    ({"t": "Bad Type!"}, "type"),
    ({"t": "x" * 100}, "type"),
    ({"i": -1}, "id"),
    ({"i": True}, "id"),
    ({"ts": "yesterday"}, "timestamp"),
    ({"b": [1, 2]}, "body"),
    ({"r": "x"}, "reply"),
    ({"b": ...}, "body"),
])
def test_malformed_envelopes_are_refused_with_the_field_named(fields, message):
    with pytest.raises(MalformedMessage, match=message):
        wire.decode(packed(**fields), 1 << 20)


def test_garbage_and_oversized_input():
    with pytest.raises(MalformedMessage, match="undecodable"):
        wire.decode(b"\xc1\xc1\xc1", 1 << 20)
    with pytest.raises(MalformedMessage, match="not a map"):
        wire.decode(msgpack.packb([1, 2]), 1 << 20)
    with pytest.raises(MessageTooLarge):
        wire.decode(packed(b={"x": b"y" * 2000}), 1000)


def test_the_cache_of_checked_type_names_is_bounded():
    for n in range(3000):
        wire.decode(packed(t=f"made.up.{n}"), 1 << 20)
    assert len(wire._valid_types) <= 1024
