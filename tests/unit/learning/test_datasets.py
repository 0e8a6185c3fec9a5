"""Dataset loading (built-in and files), validation of bad files, and client partitions."""
import numpy as np
import pytest

from core.errors import BadRequest
from core.learning import data
from core.learning.data import load_dataset, parse_partition, partition


def test_digits_is_scaled_split_80_20_and_stratified():
    ds = load_dataset("digits", seed=0)
    assert (ds.n_features, ds.n_classes, ds.image_shape) == (64, 10, (8, 8))
    assert len(ds.X_train) + len(ds.X_test) == 1797 and len(ds.X_test) == 360
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() == 1.0
    train_share = np.bincount(ds.y_train) / len(ds.y_train)
    test_share = np.bincount(ds.y_test) / len(ds.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_seed_changes_the_split_and_is_reproducible():
    a, b, c = load_dataset("digits", seed=1), load_dataset("digits", seed=1), load_dataset("digits", seed=2)
    assert np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)


def test_synthetic_is_tabular_and_deterministic():
    a, b = load_dataset("synthetic", seed=5), load_dataset("synthetic", seed=5)
    assert a.image_shape is None and a.n_classes >= 2 and a.n_features == 20
    assert np.array_equal(a.X_train, b.X_train)


def write_csv(path, text):
    path.write_text(text)
    return str(path)


def csv_rows(n=30):
    rng = np.random.default_rng(0)
    lines = ["f1,label,f2"]
    for i in range(n):
        lines.append(f"{rng.normal():.4f},{[3, 7][i % 2]},{rng.normal():.4f}")
    return "\n".join(lines) + "\n"


def test_csv_with_a_label_column_anywhere(tmp_path):
    ds = load_dataset(write_csv(tmp_path / "d.csv", csv_rows()), seed=0)
    assert ds.n_features == 2 and ds.n_classes == 2
    assert set(np.unique(ds.y_train)) == {0, 1}  # labels 3 and 7 became class indices
    assert len(ds.X_train) == 24 and len(ds.X_test) == 6
    assert ds.name == "d.csv"


def test_csv_with_another_label_column_name(tmp_path):
    text = csv_rows().replace("label", "target")
    ds = load_dataset(write_csv(tmp_path / "d.csv", text), label_column="target")
    assert ds.n_features == 2


def test_csv_without_the_label_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", csv_rows().replace("label", "class"))
    with pytest.raises(BadRequest, match="no label column 'label'"):
        load_dataset(path)


def test_csv_with_a_word_in_a_number_column_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="non-numeric"):
        load_dataset(write_csv(tmp_path / "d.csv", csv_rows() + "abc,3,1.0\n"))


def test_csv_with_nan_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="NaN"):
        load_dataset(write_csv(tmp_path / "d.csv", csv_rows() + "nan,3,1.0\n"))


def test_csv_with_fractional_labels_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="whole numbers"):
        load_dataset(write_csv(tmp_path / "d.csv", csv_rows() + "1.0,3.5,1.0\n"))


def test_empty_and_header_only_csv_are_refused(tmp_path):
    with pytest.raises(BadRequest, match="empty"):
        load_dataset(write_csv(tmp_path / "e.csv", ""))
    with pytest.raises(BadRequest, match="no rows"):
        load_dataset(write_csv(tmp_path / "h.csv", "f1,label\n"))


def test_csv_with_one_class_is_refused(tmp_path):
    text = "f,label\n" + "".join(f"{i},1\n" for i in range(20))
    with pytest.raises(BadRequest, match="single class"):
        load_dataset(write_csv(tmp_path / "d.csv", text))


def test_file_above_the_size_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 100)
    with pytest.raises(BadRequest, match="limit"):
        load_dataset(write_csv(tmp_path / "d.csv", csv_rows()))


def test_missing_file_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(BadRequest, match="cannot be read"):
        load_dataset(str(tmp_path / "nope.csv"))
    with pytest.raises(BadRequest, match="unknown dataset"):
        load_dataset("mnist")


def test_npz_with_image_arrays(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((40, 4, 4)).astype(np.float32)
    y = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert (ds.n_features, ds.n_classes, ds.image_shape) == (16, 4, (4, 4))
    assert len(ds.X_train) == 32


def test_npz_without_y_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 3)))
    with pytest.raises(BadRequest, match="lacks array"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.array([{"a": 1}] * 20, dtype=object), y=np.zeros(20))
    with pytest.raises(BadRequest, match="npz"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_with_mismatched_lengths_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 3)), y=np.zeros(19))
    with pytest.raises(BadRequest, match="20 rows of features but 19 labels"):
        load_dataset(str(tmp_path / "d.npz"))


def test_not_a_zip_is_refused(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(BadRequest, match="not a readable .npz"):
        load_dataset(str(tmp_path / "d.npz"))


# -- partitions ------------------------------------------------------------------
def assert_disjoint_cover(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_iid_partition_is_a_disjoint_cover_of_near_equal_parts():
    y = np.arange(1003) % 10
    parts = partition(y, 10, "iid", seed=0)
    assert_disjoint_cover(parts, 1003)
    assert {len(p) for p in parts} <= {100, 101}


def test_dirichlet_partition_is_a_disjoint_cover_and_skewed():
    y = np.repeat(np.arange(10), 150)
    iid = partition(y, 10, "iid", seed=0)
    skew = partition(y, 10, "dirichlet:0.1", seed=0)
    assert_disjoint_cover(skew, len(y))

    def dominant_share(parts):  # mean share of each client's most common class
        return np.mean([np.bincount(y[p], minlength=10).max() / len(p) for p in parts])
    assert dominant_share(skew) > 0.5 > 0.2 > dominant_share(iid)


def test_every_client_gets_a_few_samples_even_when_very_skewed():
    y = np.repeat(np.arange(3), 40)
    for seed in range(5):
        parts = partition(y, 20, "dirichlet:0.01", seed=seed)
        assert_disjoint_cover(parts, 120)
        assert min(len(p) for p in parts) >= 5


def test_partition_is_reproducible_for_a_seed():
    y = np.arange(500) % 5
    a = partition(y, 7, "dirichlet:0.5", seed=3)
    b = partition(y, 7, "dirichlet:0.5", seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_parse_partition_accepts_iid_and_dirichlet():
    assert parse_partition("iid") == ("iid", None)
    assert parse_partition("Dirichlet:0.3") == ("dirichlet", 0.3)


@pytest.mark.parametrize("bad", ["", "dirichlet", "dirichlet:", "dirichlet:-1", "dirichlet:0",
                                 "dirichlet:nan", "dirichlet:x", "shards:2", None])
def test_parse_partition_refuses_bad_schemes(bad):
    with pytest.raises(BadRequest):
        parse_partition(bad)


def test_more_clients_than_samples_is_refused():
    with pytest.raises(BadRequest):
        partition(np.zeros(3), 4)
