"""Shamir secret sharing: any t of n shares recover the secret, fewer do not."""
import itertools
import secrets

import pytest

from core.errors import BadRequest
from core.learning import shamir


@pytest.mark.parametrize("threshold,count", [(2, 3), (3, 5), (4, 7)])
def test_any_threshold_subset_of_shares_recovers_the_secret(threshold, count):
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, threshold, count)
    assert len(shares) == count
    for subset in itertools.combinations(shares, threshold):
        assert shamir.combine(list(subset), threshold) == secret


def test_more_shares_than_the_threshold_also_recover_the_secret():
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, 3, 6)
    assert shamir.combine(shares, 3) == secret
    assert shamir.combine(list(reversed(shares[1:])), 3) == secret


def test_secret_with_every_byte_set_round_trips():
    secret = b"\xff" * 32
    assert shamir.combine(shamir.split(secret, 2, 2), 2) == secret


def test_threshold_minus_one_shares_interpolate_to_a_wrong_value():
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, 4, 6)
    points = [shamir.parse_share(s) for s in shares[:3]]
    assert shamir.interpolate(points, 0) != int.from_bytes(secret, "big")


def test_threshold_minus_one_shares_are_refused():
    shares = shamir.split(secrets.token_bytes(32), 4, 6)
    with pytest.raises(BadRequest, match="need 4 distinct shares, got 3"):
        shamir.combine(shares[:3], 4)


def test_duplicated_share_does_not_count_twice():
    shares = shamir.split(secrets.token_bytes(32), 3, 5)
    with pytest.raises(BadRequest, match="got 2"):
        shamir.combine([shares[0], shares[0], shares[1]], 3)


def test_shares_of_one_secret_do_not_leak_it_through_fewer_than_threshold():
    # With t-1 shares fixed, every candidate secret is equally consistent: the
    # t-1 shares of two different secrets come from the same distribution, so
    # the same t-1 indices can be completed to either secret.
    secret_a, secret_b = secrets.token_bytes(32), secrets.token_bytes(32)
    shares = shamir.split(secret_a, 3, 5)
    known = [shamir.parse_share(s) for s in shares[:2]]
    fake_third = (3, shamir.interpolate(known + [(0, int.from_bytes(secret_b, "big"))], 3))
    forged = [shares[0], shares[1], fake_third[0].to_bytes(2, "big") + fake_third[1].to_bytes(66, "big")]
    assert shamir.combine(forged, 3) == secret_b


def test_conflicting_values_for_one_index_are_refused():
    shares = shamir.split(secrets.token_bytes(32), 2, 3)
    other = shamir.split(secrets.token_bytes(32), 2, 3)
    with pytest.raises(BadRequest, match="two different shares carry index 1"):
        shamir.combine([shares[0], other[0], shares[1]], 2)


def test_corrupted_extra_share_is_detected():
    shares = shamir.split(secrets.token_bytes(32), 2, 4)
    bad = bytearray(shares[3])
    bad[-1] ^= 1
    with pytest.raises(BadRequest, match="share 4 does not agree"):
        shamir.combine(shares[:3] + [bytes(bad)], 2)


def test_malformed_shares_are_refused():
    share = shamir.split(secrets.token_bytes(32), 2, 2)[0]
    with pytest.raises(BadRequest, match="68 bytes"):
        shamir.combine([share[:-1], share], 2)
    with pytest.raises(BadRequest, match="index 0"):
        shamir.combine([bytes(2) + share[2:], share], 2)


@pytest.mark.parametrize("secret,threshold,count", [
    (b"short", 2, 3), (bytes(32), 0, 3), (bytes(32), 4, 3), (bytes(32), 2, 70000)])
def test_split_rejects_bad_arguments(secret, threshold, count):
    with pytest.raises(BadRequest):
        shamir.split(secret, threshold, count)


def test_share_index_is_the_one_dealt():
    shares = shamir.split(secrets.token_bytes(32), 2, 5)
    assert [shamir.share_index(s) for s in shares] == [1, 2, 3, 4, 5]
    assert all(len(s) == shamir.SHARE_BYTES for s in shares)
