"""safetensors codec: round trip, and every kind of bad update is refused with a reason."""
import numpy as np
import pytest
from safetensors.numpy import save

from core.learning.models import build_model, get_weights, weight_spec
from core.learning.tensors import UpdateRejected, decode, encode, flatten, unflatten

SPEC = {"w": ((2, 3), "float32"), "b": ((3,), "float32")}
LIMIT = 10_000


def good():
    return {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([0.5, -1, 2], np.float32)}


def rejected(data, spec=SPEC, limit=LIMIT) -> str:
    with pytest.raises(UpdateRejected) as info:
        decode(data, spec, limit)
    return info.value.reason


def test_round_trip_keeps_values_and_spec_order():
    out = decode(encode(good()), SPEC, LIMIT)
    assert list(out) == ["w", "b"]
    for k, v in good().items():
        assert out[k].dtype == np.float32 and np.array_equal(out[k], v)


def test_model_weights_round_trip_through_the_model_spec():
    model = build_model("cnn", 64, 10, (8, 8), seed=3)
    w = get_weights(model)
    spec = weight_spec("cnn", 64, 10, (8, 8))
    out = decode(encode(w), spec, 10 * 2**20)
    assert all(np.array_equal(out[k], w[k]) for k in w)


def test_oversized_update_is_too_large():
    data = encode(good())
    assert rejected(data, limit=len(data) - 1) == "too_large"


def test_truncated_update_is_malformed():
    assert rejected(encode(good())[:-5]) == "malformed"


def test_garbage_and_empty_bytes_are_malformed():
    assert rejected(b"\x07not safetensors at all") == "malformed"
    assert rejected(b"") == "malformed"
    assert rejected("a string") == "malformed"


def test_header_claiming_a_huge_length_is_malformed():
    assert rejected((2**40).to_bytes(8, "little") + b"{}") == "malformed"


def test_missing_key_is_malformed():
    w = good()
    del w["b"]
    assert rejected(encode(w)) == "malformed"


def test_extra_key_is_malformed():
    w = good()
    w["sneaky"] = np.zeros(1, np.float32)
    assert rejected(encode(w)) == "malformed"


def test_wrong_shape_is_shape():
    w = good()
    w["w"] = np.zeros((3, 2), np.float32)
    assert rejected(encode(w)) == "shape"


def test_wrong_dtype_is_dtype():
    w = good()
    w["b"] = w["b"].astype(np.float64)
    assert rejected(encode(w)) == "dtype"
    w = good()
    w["b"] = np.array([1, 2, 3], np.int32)
    assert rejected(save(w)) == "dtype"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_non_finite(bad):
    w = good()
    w["w"][1, 2] = bad
    assert rejected(encode(w)) == "non_finite"


def test_rejection_message_names_the_weight():
    w = good()
    w["w"] = np.zeros((3, 2), np.float32)
    with pytest.raises(UpdateRejected, match="'w'"):
        decode(encode(w), SPEC, LIMIT)


def test_flatten_then_unflatten_is_identity():
    flat = flatten(good())
    assert flat.dtype == np.float32 and flat.shape == (9,)
    back = unflatten(flat, SPEC)
    assert list(back) == ["w", "b"] and all(np.array_equal(back[k], good()[k]) for k in SPEC)


def test_unflatten_refuses_a_vector_of_the_wrong_length():
    with pytest.raises(UpdateRejected) as info:
        unflatten(np.zeros(8, np.float32), SPEC)
    assert info.value.reason == "shape"
