"""Safety numbers against libsignal's test vector, and their QR code."""
from __future__ import annotations

import pytest

from core.errors import MalformedMessage
from core.identity import Identity
from core.chat.safety import combine, grouped, half, qr_png, safety_number

# libsignal-protocol-c tests/test_fingerprint.c (test_vectors, 5200 iterations).
ALICE_KEY = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
BOB_KEY = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
DISPLAYABLE = "300354477692869396892869876765458257569162576843440918079131"


def test_libsignal_vector():
    alice = half(ALICE_KEY, b"+14152222222")
    bob = half(BOB_KEY, b"+14153333333")
    assert combine(alice, bob) == DISPLAYABLE
    assert combine(bob, alice) == DISPLAYABLE


def test_both_sides_see_the_same_stable_number():
    a, b = Identity.generate("a").id, Identity.generate("b").id
    number = safety_number(a, b)
    assert number == safety_number(b, a) == safety_number(a, b)
    assert len(number) == 60 and number.isdigit()
    assert grouped(number).replace(" ", "") == number and len(grouped(number).split()) == 12


def test_a_changed_key_changes_the_number():
    a, b, mitm = (Identity.generate(n).id for n in "abm")
    number = safety_number(a, b)
    assert safety_number(a, mitm) != number
    assert safety_number(a, mitm)[:30] != number[:30] or safety_number(a, mitm)[30:] != number[30:]


def test_bad_ids_are_refused():
    with pytest.raises(MalformedMessage):
        safety_number("zz", Identity.generate("b").id)


def test_qr_code_is_a_png_that_differs_per_number():
    a, b, c = (Identity.generate(n).id for n in "abc")
    first, second = qr_png(safety_number(a, b)), qr_png(safety_number(a, c))
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and second.startswith(b"\x89PNG\r\n\x1a\n")
    assert first != second
    assert qr_png(safety_number(a, b)) == first
    for bad in ("123", "x" * 60, 60 * 1):
        with pytest.raises(MalformedMessage):
            qr_png(bad)
