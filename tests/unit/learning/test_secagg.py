"""Secure aggregation: the coordinator gets the exact sum of survivors and nothing about single updates."""
import secrets

import msgpack
import numpy as np
import pytest
from scipy import stats

from core.errors import BadRequest
from core.learning import shamir
from core.learning.secagg import (CorruptShare, NotEnoughParticipants, SecAggCoordinator,
                                  SecAggParams, SecAggWorker, UnmaskRefused, default_threshold,
                                  dequantize, quantize)


def wire(msg):
    """Every message crosses the wire as msgpack, so it must survive a round trip unchanged."""
    return msgpack.unpackb(msgpack.packb(msg))


def make_params(n, dim, **kw):
    return SecAggParams(round_id=secrets.token_bytes(16), threshold=kw.pop("threshold", default_threshold(n)),
                        dim=dim, **kw)


class Round:
    """Drives one round in memory, with workers that drop at chosen moments."""

    def __init__(self, n, dim, **params):
        self.ids = [f"worker-{i:02d}" for i in range(n)]
        self.params = make_params(n, dim, **params)
        self.workers = {i: SecAggWorker(i, self.params) for i in self.ids}
        self.coordinator = SecAggCoordinator(self.params, self.ids)

    def setup(self, drop_before_advertise=(), drop_before_shares=()):
        """Rounds 0 and 1; returns the workers that received their shares (U2)."""
        c = self.coordinator
        for i in self.ids:
            if i not in drop_before_advertise:
                c.add_advertisement(i, wire(self.workers[i].advertise()))
        roster = wire(c.roster())
        for i in roster:
            if i not in drop_before_shares:
                c.add_shares(i, wire(self.workers[i].share_keys(roster)))
        relay = wire(c.relay())
        for i, blobs in relay.items():
            self.workers[i].receive_shares(blobs)
        return list(relay)

    def mask(self, inputs, weights=None, drop_before_mask=()):
        for i, vec in inputs.items():
            if i not in drop_before_mask:
                weight = 1.0 if weights is None else weights[i]
                self.coordinator.add_masked_input(i, wire(self.workers[i].masked_input(vec, weight)))
        return wire(self.coordinator.unmask_request())

    def finish(self, request, silent=()):
        for i in request["survivors"]:
            if i not in silent:
                response = self.workers[i].unmask(request["survivors"], request["dropped"])
                self.coordinator.add_unmask_response(i, wire(response))
        return self.coordinator.result()


def random_inputs(ids, dim, seed=0):
    rng = np.random.default_rng(seed)
    return {i: rng.normal(0, 1, dim).astype(np.float32) for i in ids}


def test_masks_cancel_exactly_for_ten_workers():
    r = Round(10, 2410)
    u2 = r.setup()
    inputs = random_inputs(u2, 2410)
    total = r.finish(r.mask(inputs))
    plain = np.sum(list(inputs.values()), axis=0)
    bound = 10 * 0.5 / r.params.scale
    assert np.max(np.abs(total - plain)) <= bound + 1e-5
    assert r.coordinator.total_weight == 10.0
    # Exact: the unmasked sum is bit for bit the sum of the quantized inputs.
    quantized = sum(quantize(v, 1.0, r.params) for v in inputs.values())
    np.testing.assert_array_equal(total, dequantize(quantized, r.params)[:-1])


def test_weighted_inputs_sum_with_their_weights():
    r = Round(5, 100)
    u2 = r.setup()
    inputs = random_inputs(u2, 100, seed=1)
    weights = dict(zip(u2, [0.1, 0.25, 0.5, 0.75, 1.0]))
    total = r.finish(r.mask(inputs, weights))
    expected = sum(weights[i] * inputs[i] for i in u2)
    assert np.max(np.abs(total - expected)) <= 5 * 0.5 / r.params.scale + 1e-5
    assert r.coordinator.total_weight == pytest.approx(2.6, abs=5 / r.params.scale)


def test_values_beyond_clip_are_clipped():
    r = Round(3, 4, clip=2.0)
    u2 = r.setup()
    inputs = {i: np.array([5.0, -5.0, 1.5, 0.0], np.float32) for i in u2}
    total = r.finish(r.mask(inputs))
    np.testing.assert_allclose(total, [6.0, -6.0, 4.5, 0.0], atol=1e-4)


def test_sum_is_exact_when_workers_drop_before_and_after_masking():
    r = Round(10, 2410)
    u2 = r.setup(drop_before_advertise=["worker-00"], drop_before_shares=["worker-01"])
    assert "worker-00" not in u2 and "worker-01" not in u2
    inputs = random_inputs(u2, 2410, seed=2)
    request = r.mask(inputs, drop_before_mask=["worker-02"])      # shared keys, never masked
    assert request["dropped"] == ["worker-02"]
    # worker-03 sent its masked input, then went silent during unmasking.
    total = r.finish(request, silent=["worker-03"])
    survivors = [i for i in u2 if i != "worker-02"]
    assert request["survivors"] == survivors
    plain = np.sum([inputs[i] for i in survivors], axis=0)
    assert np.max(np.abs(total - plain)) <= len(survivors) * 0.5 / r.params.scale + 1e-5


def test_fewer_than_threshold_survivors_is_a_clear_error():
    r = Round(5, 10)                       # threshold 3
    u2 = r.setup()
    for i in u2[:2]:
        r.coordinator.add_masked_input(i, r.workers[i].masked_input(np.zeros(10)))
    with pytest.raises(NotEnoughParticipants, match="only 2 workers masked inputs.*at least 3"):
        r.coordinator.unmask_request()


def test_fewer_than_threshold_unmask_responses_is_a_clear_error():
    r = Round(5, 10)
    u2 = r.setup()
    request = r.mask(random_inputs(u2, 10))
    with pytest.raises(NotEnoughParticipants, match="only 2 survivors revealed their shares; 3 are needed"):
        r.finish(request, silent=request["survivors"][2:])


def test_fewer_than_threshold_advertisements_is_a_clear_error():
    r = Round(5, 10)
    for i in r.ids[:2]:
        r.coordinator.add_advertisement(i, r.workers[i].advertise())
    with pytest.raises(NotEnoughParticipants, match="only 2 workers advertised keys"):
        r.coordinator.roster()


def test_worker_refuses_to_reveal_both_shares_for_one_peer_in_one_request():
    r = Round(4, 10)
    u2 = r.setup()
    r.mask(random_inputs(u2, 10))
    worker = r.workers["worker-00"]
    with pytest.raises(UnmaskRefused, match="both shares of \\['worker-01'\\]"):
        worker.unmask(u2, ["worker-01"])


def test_worker_refuses_to_reveal_the_other_share_in_a_later_request():
    r = Round(4, 10)
    u2 = r.setup()
    r.mask(random_inputs(u2, 10))
    worker = r.workers["worker-00"]
    first = worker.unmask(u2, [])
    assert set(first["b_shares"]) == set(u2) and first["s_shares"] == {}
    assert worker.unmask(u2, []) == first          # a retransmitted request gets the same answer
    with pytest.raises(UnmaskRefused, match="already revealed the other kind of share for \\['worker-03'\\]"):
        worker.unmask(u2[:3], ["worker-03"])


def test_worker_refuses_requests_that_would_weaken_the_threshold_or_misstate_the_round():
    r = Round(5, 10)
    u2 = r.setup()
    r.mask(random_inputs(u2, 10))
    worker = r.workers["worker-00"]
    with pytest.raises(UnmaskRefused, match="only 2 survivors"):
        worker.unmask(u2[:2], u2[2:])
    with pytest.raises(UnmaskRefused, match="calls this worker dropped"):
        worker.unmask(u2[1:], u2[:1])
    with pytest.raises(UnmaskRefused, match="do not split"):
        worker.unmask(u2[:4], [])


def test_masked_input_is_indistinguishable_from_uniform_and_uncorrelated_with_the_update():
    dim = 16383                                        # 16384 words = 65536 bytes
    r = Round(4, dim)
    u2 = r.setup()
    ramp = np.linspace(-1, 1, dim, dtype=np.float32)  # a very structured update
    masked = np.frombuffer(r.workers[u2[0]].masked_input(ramp), dtype="<u4")

    byte_counts = np.bincount(masked.view(np.uint8), minlength=256)
    assert stats.chisquare(byte_counts).pvalue > 1e-6
    bit_counts = np.array([np.count_nonzero(masked & (1 << b)) for b in range(32)])
    assert np.all(np.abs(bit_counts - masked.size / 2) < 6 * np.sqrt(masked.size) / 2)
    plain = quantize(ramp, 1.0, r.params).view(np.int32).astype(np.float64)
    correlation = np.corrcoef(masked.astype(np.float64), plain)[0, 1]
    assert abs(correlation) < 6 / np.sqrt(masked.size)
    # The same checks catch the plain quantized update, so they are not blind.
    assert stats.chisquare(np.bincount(quantize(ramp, 1.0, r.params).view(np.uint8),
                                       minlength=256)).pvalue < 1e-6


def test_coordinator_cannot_tell_which_of_two_inputs_a_worker_sent():
    dim, trials = 256, 60
    x0, x1 = np.zeros(dim, np.float32), np.full(dim, 3.0, np.float32)
    others = random_inputs(["worker-01", "worker-02", "worker-03"], dim, seed=3)
    rng = np.random.default_rng(4)

    def guess(view, params):
        # Best natural guess: the input whose removal leaves the smaller residue.
        residues = [np.abs((view - quantize(x, 1.0, params)).view(np.int32).astype(np.int64)).sum()
                    for x in (x0, x1)]
        return int(residues[1] < residues[0])

    right_masked = right_plain = 0
    for _ in range(trials):
        secret_bit = int(rng.integers(2))
        r = Round(4, dim)
        u2 = r.setup()
        for i in u2[1:]:
            r.coordinator.add_masked_input(i, r.workers[i].masked_input(others[i]))
        target = (x0, x1)[secret_bit]
        view = np.frombuffer(r.workers[u2[0]].masked_input(target), dtype="<u4").astype(np.uint32)
        right_masked += guess(view, r.params) == secret_bit
        right_plain += guess(quantize(target, 1.0, r.params), r.params) == secret_bit
    assert right_plain == trials                       # the guess works on unmasked updates
    sigma = np.sqrt(trials) / 2
    assert abs(right_masked - trials / 2) < 4.5 * sigma  # and is a coin flip on masked ones


def test_threshold_minus_one_revealed_shares_do_not_give_the_self_mask_seed():
    r = Round(5, 10)                                   # threshold 3
    u2 = r.setup()
    request = r.mask(random_inputs(u2, 10))
    target = "worker-04"
    shares = [r.workers[i].unmask(request["survivors"], request["dropped"])["b_shares"][target]
              for i in u2[:2]]
    guessed = shamir.interpolate([shamir.parse_share(s) for s in shares], 0)
    assert guessed != int.from_bytes(r.workers[target]._b_seed, "big")
    with pytest.raises(BadRequest, match="need 3 distinct shares, got 2"):
        shamir.combine(shares, 3)


def test_corrupted_share_blob_is_rejected_naming_its_sender():
    r = Round(4, 10)
    c = r.coordinator
    for i in r.ids:
        c.add_advertisement(i, r.workers[i].advertise())
    roster = c.roster()
    for i in r.ids:
        c.add_shares(i, r.workers[i].share_keys(roster))
    relay = c.relay()
    blobs = dict(relay["worker-00"])
    damaged = bytearray(blobs["worker-02"])
    damaged[20] ^= 0x01
    blobs["worker-02"] = bytes(damaged)
    with pytest.raises(CorruptShare, match="from 'worker-02' failed authentication"):
        r.workers["worker-00"].receive_shares(blobs)


def test_share_blob_addressed_to_another_worker_is_rejected():
    r = Round(4, 10)
    c = r.coordinator
    for i in r.ids:
        c.add_advertisement(i, r.workers[i].advertise())
    roster = c.roster()
    for i in r.ids:
        c.add_shares(i, r.workers[i].share_keys(roster))
    relay = c.relay()
    misrouted = dict(relay["worker-00"])
    misrouted["worker-02"] = relay["worker-01"]["worker-02"]
    with pytest.raises(CorruptShare, match="worker-02"):
        r.workers["worker-00"].receive_shares(misrouted)


def test_revealed_shares_that_do_not_rebuild_the_mask_key_are_rejected():
    r = Round(4, 10)                                   # threshold 3
    u2 = r.setup()
    request = r.mask(random_inputs(u2, 10), drop_before_mask=["worker-03"])
    responses = {i: r.workers[i].unmask(request["survivors"], request["dropped"]) for i in request["survivors"]}
    share = bytearray(responses["worker-00"]["s_shares"]["worker-03"])
    share[-1] ^= 1
    responses["worker-00"]["s_shares"]["worker-03"] = bytes(share)
    for i, response in responses.items():
        r.coordinator.add_unmask_response(i, response)
    with pytest.raises(BadRequest, match="do not rebuild 'worker-03'"):
        r.coordinator.result()


def test_roster_that_changes_a_workers_own_keys_is_refused():
    r = Round(3, 10)
    c = r.coordinator
    for i in r.ids:
        c.add_advertisement(i, r.workers[i].advertise())
    roster = c.roster()
    roster["worker-00"], roster["worker-01"] = roster["worker-01"], roster["worker-00"]
    with pytest.raises(BadRequest, match="own keys"):
        r.workers["worker-00"].share_keys(roster)


def test_steps_out_of_order_are_refused():
    r = Round(3, 10)
    with pytest.raises(BadRequest, match="masked_input is out of order"):
        r.workers["worker-00"].masked_input(np.zeros(10))
    with pytest.raises(BadRequest, match="phase share arrived during phase advertise"):
        r.coordinator.add_shares("worker-00", {})


def test_coordinator_rejects_bad_messages():
    r = Round(3, 10)
    c = r.coordinator
    with pytest.raises(BadRequest, match="not a participant"):
        c.add_advertisement("stranger", r.workers["worker-00"].advertise())
    with pytest.raises(BadRequest, match="32-byte X25519"):
        c.add_advertisement("worker-00", {"c_pk": b"x", "s_pk": b"y"})
    c.add_advertisement("worker-00", r.workers["worker-00"].advertise())
    with pytest.raises(BadRequest, match="duplicate"):
        c.add_advertisement("worker-00", r.workers["worker-00"].advertise())
    for i in r.ids[1:]:
        c.add_advertisement(i, r.workers[i].advertise())
    roster = c.roster()
    for i in r.ids:
        c.add_shares(i, r.workers[i].share_keys(roster))
    for i, blobs in c.relay().items():
        r.workers[i].receive_shares(blobs)
    with pytest.raises(BadRequest, match="must be 44 bytes"):
        c.add_masked_input("worker-00", b"\0" * 40)


def test_worker_rejects_bad_update_vectors():
    r = Round(3, 4)
    r.setup()
    worker = r.workers["worker-00"]
    with pytest.raises(BadRequest, match="4 values"):
        worker.masked_input(np.zeros(5))
    with pytest.raises(BadRequest, match="NaN"):
        worker.masked_input(np.array([0, np.nan, 0, 0]))
    with pytest.raises(BadRequest, match="weight must be in"):
        worker.masked_input(np.zeros(4), weight=250)


def test_params_refuse_a_range_that_could_overflow():
    with pytest.raises(BadRequest, match="overflow 32-bit fixed point"):
        SecAggParams(round_id=bytes(16), threshold=3, dim=10, scale=2**20, clip=16.0, max_clients=1000)


def test_coordinator_refuses_a_minority_threshold():
    with pytest.raises(BadRequest, match="strict majority"):
        SecAggCoordinator(make_params(10, 5, threshold=5), [f"w{i}" for i in range(10)])


def test_params_travel_as_a_plain_map():
    params = make_params(7, 2410)
    assert SecAggParams.from_dict(wire(params.to_dict())) == params
    with pytest.raises(BadRequest, match="malformed"):
        SecAggParams.from_dict({"round_id": params.round_id})
