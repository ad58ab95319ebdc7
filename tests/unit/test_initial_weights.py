"""Initial weights drawn with numpy: Keras's distributions and fans, fixed seeds, and the way into PyTorch's layout."""

import math

import numpy as np
import pytest

from dsl.tables import WeightRow
from generated import lenet5
from runtime.common import initial_weights
from runtime.common.initial_weights import draw, fans
from runtime.common.layouts import flat_order_torch_to_keras, to_keras_layout, to_torch_layout
from tests.distributions import keras_cdf, ks_pvalue, ks_statistic

# Large enough that the KS test sees a wrong fan or a missing truncation; fans as Keras's compute_fans gives them.
SHAPES = {"conv": ((3, 3, 64, 128), (576, 1152)), "dense": ((784, 300), (784, 300))}
CONTINUOUS = ("glorot_uniform", "he_uniform", "he_normal")
ALPHA = 1e-3


def sample(initializer: str, kind: str, seed: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    shape, expected_fans = SHAPES[kind]
    return draw(initializer, shape, np.random.default_rng(seed)), expected_fans


def p_value(values: np.ndarray, initializer: str, expected_fans: tuple[int, int]) -> float:
    return ks_pvalue(ks_statistic(values, keras_cdf(initializer, *expected_fans)), values.size)


def expected_std_and_bound(initializer: str, fan_in: int, fan_out: int) -> tuple[float, float]:
    """The kept values' standard deviation and the largest magnitude Keras can draw."""
    if initializer == "he_normal":
        std = math.sqrt(2.0 / fan_in)
        return std, 2.0 * std / 0.87962566103423978  # two standard deviations of the normal before truncation
    limit = math.sqrt(6.0 / (fan_in + fan_out) if initializer == "glorot_uniform" else 6.0 / fan_in)
    return limit / math.sqrt(3.0), limit


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((), (1, 1)), ((7,), (7, 7)), ((784, 300), (784, 300)), ((3, 3, 64, 128), (576, 1152)), ((2, 3, 4, 5), (24, 30))],
)
def test_fans_are_keras_fans(shape, expected):
    assert fans(shape) == expected


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("initializer", CONTINUOUS)
def test_moments_and_bound(initializer, kind):
    values, expected_fans = sample(initializer, kind)
    std, bound = expected_std_and_bound(initializer, *expected_fans)
    assert values.dtype == np.float32 and values.shape == SHAPES[kind][0]
    assert abs(values.mean()) < 5 * std / math.sqrt(values.size)
    assert values.std() == pytest.approx(std, rel=0.01)
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    assert np.abs(values).max() >= 0.99 * bound  # the whole range is used, not a narrower one


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("initializer", CONTINUOUS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_draws_pass_the_ks_test_against_the_exact_distribution(initializer, kind, seed):
    values, expected_fans = sample(initializer, kind, seed)
    assert p_value(values, initializer, expected_fans) >= ALPHA


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("initializer", ["he_uniform", "he_normal"])
def test_ks_test_rejects_fan_out_in_place_of_fan_in(monkeypatch, initializer, kind):
    monkeypatch.setattr(initial_weights, "fans", lambda shape: fans(shape)[::-1])
    values, expected_fans = sample(initializer, kind)
    assert p_value(values, initializer, expected_fans) < ALPHA


@pytest.mark.parametrize("initializer", CONTINUOUS)
def test_ks_test_rejects_fans_without_the_receptive_field(monkeypatch, initializer):
    monkeypatch.setattr(initial_weights, "fans", lambda shape: tuple(shape[-2:]))
    values, expected_fans = sample(initializer, "conv")
    assert p_value(values, initializer, expected_fans) < ALPHA


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_ks_test_rejects_a_missing_truncation(monkeypatch, kind):
    monkeypatch.setattr(initial_weights, "TRUNCATION", math.inf)
    values, expected_fans = sample("he_normal", kind)
    assert np.abs(values).max() > expected_std_and_bound("he_normal", *expected_fans)[1]
    assert p_value(values, "he_normal", expected_fans) < ALPHA


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_ks_test_rejects_a_missing_rescale(monkeypatch, kind):
    monkeypatch.setattr(initial_weights, "TRUNCATED_NORMAL_STD", 1.0)
    values, expected_fans = sample("he_normal", kind)
    assert p_value(values, "he_normal", expected_fans) < ALPHA


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_ks_test_rejects_an_untruncated_normal_of_the_same_variance(monkeypatch, kind):
    """Moments cannot tell this one apart; the distribution test must."""

    def untruncated(rng, shape, std):
        return rng.standard_normal(shape) * std * initial_weights.TRUNCATED_NORMAL_STD

    monkeypatch.setattr(initial_weights, "truncated_normal", untruncated)
    values, expected_fans = sample("he_normal", kind)
    assert values.std() == pytest.approx(expected_std_and_bound("he_normal", *expected_fans)[0], rel=0.01)
    assert p_value(values, "he_normal", expected_fans) < ALPHA


@pytest.mark.parametrize(("initializer", "value"), [("zeros", 0.0), ("ones", 1.0)])
def test_constant_initialisers(initializer, value):
    values = draw(initializer, (3, 4), np.random.default_rng(0))
    assert values.dtype == np.float32 and values.shape == (3, 4)
    assert np.array_equal(values, np.full((3, 4), value, dtype=np.float32))


def test_unknown_initialiser_is_an_error():
    with pytest.raises(ValueError, match="unknown initializer 'lecun_normal'"):
        draw("lecun_normal", (3, 4), np.random.default_rng(0))


def weights_by_label(rows, seed: int) -> dict[str, np.ndarray]:
    return {f"{row.layer}.{row.variable}": values for row, values in initial_weights.initial_weights(rows, seed)}


def test_every_weight_gets_its_rows_shape_in_float32():
    for row, values in initial_weights.initial_weights(lenet5.WEIGHTS, seed=0):
        assert values.shape == row.shape and values.dtype == np.float32, row


def test_same_seed_same_values_other_seed_other_values():
    first, again, other = (weights_by_label(lenet5.WEIGHTS, seed) for seed in (0, 0, 1))
    for label, values in first.items():
        assert np.array_equal(values, again[label]), label
        if label.endswith("kernel"):
            assert not np.any(values == other[label]), label


def test_each_weights_stream_is_its_own():
    """Changing one weight's shape or initialiser leaves every other weight's values as they were."""
    rows = list(lenet5.WEIGHTS)
    changed = [WeightRow("conv1", "kernel", (3, 3, 1, 6), "he_normal", None), *rows[1:]]
    before, after = weights_by_label(rows, 0), weights_by_label(changed, 0)
    assert not np.array_equal(before["conv1.kernel"][:3, :3], after["conv1.kernel"])
    for label in list(before)[1:]:
        assert np.array_equal(before[label], after[label]), label


def test_two_weights_of_one_shape_are_not_the_same_draw():
    row = WeightRow("fc", "kernel", (64, 64), "glorot_uniform", None)
    (_, first), (_, second) = initial_weights.initial_weights([row, row], seed=0)
    assert not np.any(first == second)


# The way into PyTorch's layout: a Dense after a Flatten of a (5, 5, 16) map, as in LeNet-5.
FEATURE_MAP = (5, 5, 16)


def flat_vectors(rng) -> tuple[np.ndarray, np.ndarray]:
    """One feature map flattened as Keras does (height, width, channel) and as nn.Flatten does (channel, ...)."""
    feature_map = rng.standard_normal(FEATURE_MAP)
    return feature_map.ravel(), feature_map.transpose(2, 0, 1).ravel()


def test_flatten_order_is_a_real_permutation_here_and_the_identity_for_one_channel():
    order = flat_order_torch_to_keras(FEATURE_MAP)
    assert sorted(order) == list(range(400)) and not np.array_equal(order, np.arange(400))
    assert np.array_equal(flat_order_torch_to_keras((28, 28, 1)), np.arange(784))


def test_a_dense_kernel_in_torch_layout_computes_the_same_outputs_on_torchs_flat_order():
    rng = np.random.default_rng(0)
    keras_flat, torch_flat = flat_vectors(rng)
    kernel = rng.standard_normal((400, 120))
    expected = keras_flat @ kernel
    np.testing.assert_allclose(to_torch_layout(kernel, FEATURE_MAP) @ torch_flat, expected, rtol=1e-12, atol=1e-12)
    assert np.abs(to_torch_layout(kernel, None) @ torch_flat - expected).max() > 1.0  # without the reorder: wrong


def test_a_per_feature_weight_between_flatten_and_dense_is_reordered_too():
    rng = np.random.default_rng(1)
    keras_flat, torch_flat = flat_vectors(rng)
    gamma = rng.standard_normal(400)
    torch_gamma = to_torch_layout(gamma, FEATURE_MAP)
    keras_result_in_torch_order = (keras_flat * gamma)[np.argsort(flat_order_torch_to_keras(FEATURE_MAP))]
    np.testing.assert_array_equal(torch_flat * torch_gamma, keras_result_in_torch_order)


@pytest.mark.parametrize(
    ("shape", "flattened"), [((400, 120), FEATURE_MAP), ((400,), FEATURE_MAP), ((120, 84), None), ((5, 5, 6, 16), None)]
)
def test_layouts_round_trip(shape, flattened):
    array = np.random.default_rng(2).standard_normal(shape)
    np.testing.assert_array_equal(to_keras_layout(to_torch_layout(array, flattened), flattened), array)
