"""Aggregation rules against values worked out by hand on tiny tensors."""
import numpy as np
import pytest
import torch

from core.errors import BadRequest
from core.learning.aggregators import (AGGREGATORS, aggregate, fedavg, krum, krum_scores, median,
                                       multikrum, trimmed_mean)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_fedavg_weights_rows_by_example_counts():
    x = t([[1.0, 10.0], [3.0, 30.0]])
    # (1*1 + 3*3) / 4 = 2.5 ; (10*1 + 30*3) / 4 = 25
    assert fedavg(x, [1, 3]).tolist() == pytest.approx([2.5, 25.0])


def test_fedavg_refuses_all_zero_or_mismatched_counts():
    x = t([[1.0], [2.0]])
    with pytest.raises(BadRequest):
        fedavg(x, [0, 0])
    with pytest.raises(BadRequest):
        fedavg(x, [1, 2, 3])


def test_median_of_odd_count_is_the_middle_value():
    x = t([[5.0, -1.0], [1.0, 7.0], [3.0, 2.0]])
    assert median(x).tolist() == [3.0, 2.0]


def test_median_of_even_count_is_the_mean_of_the_two_middle_values():
    x = t([[1.0, 10.0, 4.0], [2.0, 20.0, 4.0], [3.0, 30.0, 4.0], [100.0, -5.0, 9.0]])
    # sorted columns: [1,2,3,100] -> (2+3)/2; [-5,10,20,30] -> (10+20)/2; [4,4,4,9] -> 4
    assert median(x).tolist() == [2.5, 15.0, 4.0]
    assert torch.median(x, dim=0).values.tolist() == [2.0, 10.0, 4.0]  # torch alone gives the lower one


def test_median_of_even_count_with_ties_at_the_middle():
    x = t([[7.0], [1.0], [7.0], [9.0]])  # sorted 1,7,7,9 -> 7
    assert median(x).tolist() == [7.0]
    x = t([[2.0], [2.0], [5.0], [5.0]])  # sorted 2,2,5,5 -> 3.5
    assert median(x).tolist() == [3.5]


def test_median_matches_numpy_across_block_boundaries():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 10_000)).astype(np.float32)
    assert np.allclose(median(torch.from_numpy(x)).numpy(), np.median(x, axis=0), atol=1e-6)


def test_trimmed_mean_drops_the_extremes_per_coordinate():
    x = t([[1.0, -100.0], [2.0, 0.0], [3.0, 1.0], [4.0, 2.0], [1000.0, 3.0]])
    # beta=0.2 of 5 rows trims 1 from each end: mean(2,3,4)=3 ; mean(0,1,2)=1
    assert trimmed_mean(x, 0.2).tolist() == pytest.approx([3.0, 1.0])


def test_trimmed_mean_at_beta_zero_is_the_plain_mean_and_below_one_row_trims_nothing():
    x = t([[1.0], [2.0], [6.0]])
    assert trimmed_mean(x, 0.0).tolist() == pytest.approx([3.0])
    assert trimmed_mean(x, 0.3).tolist() == pytest.approx([3.0])  # floor(0.3*3) = 0


def test_trimmed_mean_near_one_half_leaves_the_middle():
    x = t([[1.0], [2.0], [3.0], [50.0], [-60.0]])
    assert trimmed_mean(x, 0.49).tolist() == pytest.approx([2.0])  # trims 2 each end


def test_trimmed_mean_is_not_dragged_by_a_huge_outlier():
    x = t([[1.0], [2.0], [3.0], [1e30]])
    assert trimmed_mean(x, 0.25).tolist() == pytest.approx([2.5])


def test_trimmed_mean_rejects_beta_of_one_half_or_more():
    with pytest.raises(BadRequest):
        trimmed_mean(t([[1.0], [2.0]]), 0.5)


def test_krum_scores_match_hand_computed_distances():
    x = t([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, -5.0]])
    # f=0 -> each score sums the 2 nearest squared distances
    # d01=101 d02=404 d12=101 d03=10026 d13=10229 d23=10634
    assert krum_scores(x, 0).tolist() == pytest.approx([505.0, 202.0, 505.0, 20255.0])


def test_krum_picks_an_honest_update_among_outliers():
    honest = [[1.0, 1.0], [1.1, 0.9], [0.9, 1.1], [1.0, 1.05], [1.05, 1.0]]
    outliers = [[-40.0, -40.0], [50.0, 60.0]]
    x = t(outliers + honest)
    vec, kept = krum(x, f=2)
    assert kept[0] >= 2
    assert vec.tolist() == x[kept[0]].tolist()


def test_krum_survives_an_overflowing_outlier():
    x = t([[1.0, 1.0], [1.1, 1.0], [0.9, 1.0], [1.0, 0.9], [3e38, -3e38]])
    _, kept = krum(x, f=1)
    assert kept[0] != 4


def test_krum_needs_two_f_plus_three_updates():
    with pytest.raises(BadRequest):
        krum(t([[0.0]] * 6), f=2)


def test_multikrum_averages_the_best_scored_updates():
    x = t([[0.0], [1.0], [2.0], [3.0], [100.0]])
    vec, kept = multikrum(x, f=1, m=3)
    # f=1, n=5 -> 2 nearest: scores 0:1+4 1:1+1 2:1+1 3:1+4 4:big -> keep 1,2 then 0 (stable)
    assert kept == [0, 1, 2]
    assert vec.tolist() == pytest.approx([1.0])


def test_multikrum_keeps_n_minus_f_by_default():
    x = t([[0.0], [1.0], [2.0], [3.0], [100.0]])
    _, kept = multikrum(x, f=1)
    assert kept == [0, 1, 2, 3]


def test_wrapper_names_cover_the_design():
    assert set(AGGREGATORS) == {"fedavg", "fedprox", "krum", "multikrum", "median", "trimmed-mean"}
    with pytest.raises(BadRequest):
        aggregate("mean-ish", [np.zeros(2, np.float32)])


def test_wrapper_fedprox_aggregates_like_fedavg():
    ups = [np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32)]
    a = aggregate("fedavg", ups, [1, 3])
    b = aggregate("fedprox", ups, [1, 3])
    assert a.vector.tolist() == b.vector.tolist() == pytest.approx([2.5, 3.5])
    assert a.kept == [0, 1] and a.rejected == {}


def test_wrapper_reports_rows_krum_rejected():
    ups = [np.full(3, v, np.float32) for v in (1.0, 1.1, 0.9, 1.05, 90.0)]
    res = aggregate("krum", ups, [1] * 5, f=1)
    assert res.kept == [0] or res.kept == [3]
    assert 4 in res.rejected and res.rejected[4] == "krum_score"
    assert len(res.kept) + len(res.rejected) == 5


def test_wrapper_lowers_f_when_too_few_updates_arrived():
    ups = [np.full(2, v, np.float32) for v in (1.0, 1.1, 0.9, 50.0)]
    res = aggregate("krum", ups, f=3)
    assert res.f_used == 0
    assert res.kept != [3]


def test_wrapper_reference_gives_the_same_result_in_delta_space():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=50).astype(np.float32)
    ups = [ref + rng.normal(scale=0.01, size=50).astype(np.float32) for _ in range(7)]
    for name in AGGREGATORS:
        plain = aggregate(name, ups, [1] * 7, f=1)
        shifted = aggregate(name, ups, [1] * 7, f=1, reference=ref)
        assert np.allclose(plain.vector, shifted.vector, atol=1e-5), name
        assert plain.kept == shifted.kept


def test_wrapper_trimmed_mean_trims_f_from_each_end_by_default():
    ups = [np.array([v], np.float32) for v in (-100.0, 1.0, 2.0, 3.0, 4.0, 100.0)]
    assert aggregate("trimmed-mean", ups, f=1).vector.tolist() == pytest.approx([2.5])


def test_wrapper_rejects_updates_of_different_sizes():
    with pytest.raises(BadRequest):
        aggregate("median", [np.zeros(3, np.float32), np.zeros(4, np.float32)])
