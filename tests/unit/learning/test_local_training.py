"""Models, local training (FedAvg, FedProx, DP), evaluation, the accountant and attacks."""
import numpy as np
import pytest

from core.errors import BadRequest
from core.learning.attacks import apply_attack, flip_labels
from core.learning.models import MODELS, build_model, get_weights, set_weights, weight_spec
from core.learning.privacy import PrivacyAccountant, clip_and_noise
from core.learning.tensors import flatten
from core.learning.train import TrainConfig, evaluate, held_out_scores, train_local


@pytest.fixture(scope="module")
def toy():
    """A small, learnable 4-class problem: class = argmax of the first 4 features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 16)).astype(np.float32)
    y = X[:, :4].argmax(1).astype(np.int64)
    return X, y


def init(model="mlp", seed=0):
    return get_weights(build_model(model, 16, 4, (4, 4), seed=seed))


def test_models_are_deterministic_per_seed_and_differ_across_seeds():
    for name in MODELS:
        a, b, c = init(name, 1), init(name, 1), init(name, 2)
        assert list(a) == list(b)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_weight_spec_lists_names_shapes_and_dtypes_in_state_dict_order():
    spec = weight_spec("mlp", 64, 10, hidden=32)
    assert list(spec.items()) == [("1.weight", ((32, 64), "float32")), ("1.bias", ((32,), "float32")),
                                  ("3.weight", ((10, 32), "float32")), ("3.bias", ((10,), "float32"))]
    model = build_model("cnn", 64, 10, (8, 8))
    assert {k: v[0] for k, v in weight_spec("cnn", 64, 10, (8, 8)).items()} == \
        {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_cnn_refuses_tabular_data_and_unknown_models_are_refused():
    with pytest.raises(BadRequest, match="image"):
        build_model("cnn", 20, 3, None)
    with pytest.raises(BadRequest, match="unknown model"):
        build_model("resnet", 20, 3)


def test_set_weights_then_get_weights_round_trips_and_checks_shapes():
    model = build_model("mlp", 16, 4)
    w = init("mlp", seed=9)
    set_weights(model, w)
    assert all(np.array_equal(get_weights(model)[k], w[k]) for k in w)
    w["1.bias"] = np.zeros(3, np.float32)
    with pytest.raises(BadRequest, match="1.bias"):
        set_weights(model, w)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_local_training_lowers_the_loss(toy, model):
    X, y = toy
    g = init(model)
    loss0, acc0 = evaluate(g, X, y, model, 16, 4, (4, 4))
    res = train_local(g, X, y, TrainConfig(model=model, epochs=5, lr=0.05, batch=16), 16, 4, (4, 4))
    loss1, acc1 = evaluate(res.weights, X, y, model, 16, 4, (4, 4))
    assert loss1 < loss0 and acc1 > acc0 + 0.2
    assert res.n_examples == 240 and res.dp_steps == 0
    assert res.update_norm == pytest.approx(np.linalg.norm(flatten(res.weights) - flatten(g)), rel=1e-4)


def test_local_training_is_reproducible_for_a_seed(toy):
    X, y = toy
    cfg = TrainConfig(model="mlp", seed=4)
    a = train_local(init(), X, y, cfg, 16, 4)
    b = train_local(init(), X, y, cfg, 16, 4)
    assert np.array_equal(flatten(a.weights), flatten(b.weights))


def test_fedprox_keeps_the_update_closer_to_the_global_model(toy):
    X, y = toy
    free = train_local(init(), X, y, TrainConfig(model="mlp", epochs=5), 16, 4)
    prox = train_local(init(), X, y, TrainConfig(model="mlp", epochs=5, prox_mu=1.0), 16, 4)
    assert prox.update_norm < 0.9 * free.update_norm


def test_dp_clips_the_delta_before_adding_noise(toy):
    X, y = toy
    g = init()
    clipped = train_local(g, X, y, TrainConfig(model="mlp", epochs=3, dp_clip=0.1, dp_noise=0.0), 16, 4)
    assert clipped.update_norm == pytest.approx(0.1, rel=1e-3)
    assert clipped.dp_steps == 1 and clipped.sample_rate == 1.0
    noisy = train_local(g, X, y, TrainConfig(model="mlp", epochs=3, dp_clip=0.1, dp_noise=1.0), 16, 4)
    d = sum(v.size for v in g.values())
    # noise norm ~ 1.0 * 0.1 * sqrt(d) dwarfs the clipped delta
    assert noisy.update_norm == pytest.approx(0.1 * np.sqrt(d), rel=0.1)


def test_train_config_refuses_half_configured_dp_and_bad_values(toy):
    X, y = toy
    for cfg in (TrainConfig(model="mlp", dp_clip=1.0), TrainConfig(model="mlp", lr=-1),
                TrainConfig(model="mlp", epochs=0), TrainConfig(model="mlp", batch=0)):
        with pytest.raises(BadRequest):
            train_local(init(), X, y, cfg, 16, 4)


def test_clip_and_noise_bounds_the_norm_and_adds_noise_of_the_right_scale():
    rng = np.random.default_rng(0)
    big = np.full(10_000, 3.0, np.float32)
    assert np.linalg.norm(clip_and_noise(big, 2.0, 0.0, rng)) == pytest.approx(2.0, rel=1e-5)
    small = np.full(4, 0.1, np.float32)
    assert np.allclose(clip_and_noise(small, 2.0, 0.0, rng), small)  # inside the ball: untouched
    noise = clip_and_noise(np.zeros(100_000, np.float32), 2.0, 0.5, rng)
    assert noise.std() == pytest.approx(1.0, rel=0.02)


def test_accountant_epsilon_grows_with_rounds_and_shrinks_with_noise():
    acct = PrivacyAccountant(noise_multiplier=1.0, sample_rate=1.0)
    assert acct.epsilon() == 0.0
    eps = []
    for _ in range(3):
        acct.step()
        eps.append(acct.epsilon())
    assert eps[0] < eps[1] < eps[2] and acct.steps == 3
    noisier = PrivacyAccountant(noise_multiplier=4.0, sample_rate=1.0)
    noisier.step(3)
    assert noisier.epsilon() < eps[2]
    sampled = PrivacyAccountant(noise_multiplier=1.0, sample_rate=0.1)
    sampled.step(3)
    assert sampled.epsilon() < eps[2]  # privacy amplification by sampling


def test_accountant_matches_opacus_rdp_directly():
    from opacus.accountants import RDPAccountant
    ref = RDPAccountant()
    for _ in range(5):
        ref.step(noise_multiplier=1.3, sample_rate=0.5)
    acct = PrivacyAccountant(1.3, 0.5, delta=1e-6)
    acct.step(5)
    assert acct.epsilon() == pytest.approx(ref.get_epsilon(delta=1e-6))


def test_accountant_refuses_bad_parameters():
    for args in ((0.0, 1.0), (1.0, 0.0), (1.0, 1.5), (1.0, 1.0, 0.0)):
        with pytest.raises(BadRequest):
            PrivacyAccountant(*args)


def test_sign_flip_sends_the_negated_scaled_delta():
    g = {"w": np.array([1.0, 1.0], np.float32)}
    t = {"w": np.array([2.0, 0.5], np.float32)}
    out = apply_attack("sign_flip", g, t, np.random.default_rng(0))
    assert out["w"].tolist() == pytest.approx([1.0 - 4.0, 1.0 + 2.0])
    out = apply_attack("sign_flip", g, t, np.random.default_rng(0), scale=1.0)
    assert out["w"].tolist() == pytest.approx([0.0, 1.5])


def test_noise_attack_is_much_larger_than_the_honest_delta():
    rng = np.random.default_rng(0)
    g = {"w": np.zeros(10_000, np.float32)}
    t = {"w": np.full(10_000, 0.01, np.float32)}
    out = apply_attack("noise", g, t, rng)
    assert out["w"].dtype == np.float32
    assert out["w"].std() == pytest.approx(10 * 0.01, rel=0.05)


def test_label_flip_poisons_labels_and_leaves_weights_alone():
    assert flip_labels(np.array([0, 1, 9]), 10).tolist() == [9, 8, 0]
    t = {"w": np.array([2.0], np.float32)}
    assert apply_attack("label_flip", {"w": np.zeros(1, np.float32)}, t, None)["w"].tolist() == [2.0]


def test_unknown_attack_is_refused():
    with pytest.raises(BadRequest, match="unknown attack"):
        apply_attack("bribe", {}, {}, np.random.default_rng(0))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_held_out_scores_give_the_whole_sets_and_the_validation_halfs_scores_in_one_pass(toy, model):
    X, y = toy
    weights = init(model, seed=3)
    shape = (16, 4, (4, 4))
    loss, acc, half = held_out_scores(weights, X, y, model, *shape)
    assert (loss, acc) == pytest.approx(evaluate(weights, X, y, model, *shape), abs=1e-6)
    assert half == pytest.approx(evaluate(weights, X[::2], y[::2], model, *shape)[0], abs=1e-6)
    with pytest.raises(BadRequest):
        held_out_scores(weights, X[:1], y[:1], model, *shape)
