"""The numpy initial weights against each framework's own initialisers, and both frameworks starting from them."""

import importlib

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src.initializers.random_initializers import compute_fans  # noqa: E402

from runtime.common.initial_weights import draw, fans, initial_weights  # noqa: E402
from runtime.common.layouts import to_channels_first, to_keras_layout  # noqa: E402
from runtime.interop.weights import tensor_pairs, torch_array  # noqa: E402
from runtime.keras import init as keras_init  # noqa: E402
from runtime.torch import init as torch_init  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.distributions import fits, keras_cdf  # noqa: E402

CONTINUOUS = ("glorot_uniform", "he_uniform", "he_normal")
KERAS_INITIALIZERS = {
    "glorot_uniform": keras.initializers.GlorotUniform,
    "he_uniform": keras.initializers.HeUniform,
    "he_normal": keras.initializers.HeNormal,
}
CONV, DENSE = (3, 3, 64, 128), (6272, 48)  # large enough for the KS test to see a wrong fan or truncation
SPEC = """
name: big_{init}
input: [9, 9, 64]
layers:
  - Conv2D: {{filters: 128, kernel_size: 3, kernel_initializer: {init}}}
  - Flatten: {{}}
  - Dense: {{units: 48, kernel_initializer: {init}}}
"""
SEED = 7
EVAL_TOL = 1e-5


@pytest.mark.parametrize("shape", [(), (7,), (784, 300), CONV, (2, 3, 4, 5, 6)])
def test_fans_are_keras_compute_fans(shape):
    assert fans(shape) == compute_fans(shape)


@pytest.mark.parametrize("shape", [CONV, DENSE])
@pytest.mark.parametrize("initializer", CONTINUOUS)
def test_numpy_and_keras_draws_pass_the_same_ks_test(initializer, shape):
    cdf = keras_cdf(initializer, *compute_fans(shape))
    for seed in (0, 1):
        keras_values = np.asarray(KERAS_INITIALIZERS[initializer](seed=seed)(shape))
        numpy_values = draw(initializer, shape, np.random.default_rng(seed))
        assert fits(keras_values, cdf), ("keras", seed)
        assert fits(numpy_values, cdf), ("numpy", seed)


@pytest.mark.parametrize("initializer", CONTINUOUS)
def test_generated_models_own_draws_pass_the_same_ks_test(build_package, initializer):
    """reset_parameters (PyTorch) and the Keras layers' initialisers, as build_*_model() leave them."""
    package = build_package(SPEC.format(init=initializer))
    keras.utils.set_random_seed(0)
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    for name, shape in (("conv1", CONV), ("fc1", DENSE)):
        cdf = keras_cdf(initializer, *compute_fans(shape))
        torch_values = to_keras_layout(getattr(torch_model, name).weight.detach().numpy())
        keras_values = np.asarray(keras_model.get_layer(name).kernel)
        assert torch_values.shape == keras_values.shape == shape
        assert fits(torch_values, cdf), (name, "torch")
        assert fits(keras_values, cdf), (name, "keras")


def loaded_pair(name: str, seed: int):
    package = importlib.import_module(f"generated.{name}")
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    torch_init.load_initial_weights(torch_model, package.WEIGHTS, seed)
    keras_init.load_initial_weights(keras_model, package.WEIGHTS, seed)
    return package, torch_model.eval(), keras_model


def eval_outputs(package, torch_model, keras_model) -> tuple[np.ndarray, np.ndarray]:
    """Both models' eval-mode outputs on the same 16 random images."""
    images = np.random.default_rng(0).random((16, *package.INPUT_SHAPE), dtype=np.float32)
    with torch.no_grad():
        torch_out = torch_model(torch.from_numpy(to_channels_first(images))).numpy()
    return torch_out, np.asarray(keras_model(images, training=False))


@pytest.mark.parametrize("name", [spec.stem for spec in SPECS])
def test_both_frameworks_start_from_bit_identical_weights(name):
    package, torch_model, keras_model = loaded_pair(name, SEED)
    pairs = {pair.label: pair for pair in tensor_pairs(torch_model, keras_model)}
    drawn = {f"{row.layer}.{row.variable}": values for row, values in initial_weights(package.WEIGHTS, SEED)}
    assert pairs.keys() == drawn.keys()  # every weight of both models comes from the table
    for label, pair in pairs.items():
        keras_values = np.asarray(pair.keras_variable.numpy())
        torch_values = torch_array(pair)
        assert torch_values.dtype == keras_values.dtype == np.float32, label
        assert np.array_equal(torch_values, keras_values), label
        assert np.array_equal(keras_values, drawn[label]), label


@pytest.mark.parametrize("name", [spec.stem for spec in SPECS])
def test_both_frameworks_compute_the_same_eval_forward_from_them(name):
    torch_out, keras_out = eval_outputs(*loaded_pair(name, SEED))
    assert torch_out.shape == keras_out.shape == (16, 10)
    np.testing.assert_allclose(torch_out, keras_out, rtol=0, atol=EVAL_TOL)


def test_another_seed_gives_other_weights_in_both():
    _, torch_a, keras_a = loaded_pair("lenet5", SEED)
    _, torch_b, keras_b = loaded_pair("lenet5", SEED + 1)
    assert not np.array_equal(torch_a.fc1.weight.detach().numpy(), torch_b.fc1.weight.detach().numpy())
    assert not np.array_equal(np.asarray(keras_a.get_layer("fc1").kernel), np.asarray(keras_b.get_layer("fc1").kernel))


def test_a_load_that_skips_the_flatten_reorder_is_caught(monkeypatch):
    """The checks above fail when PyTorch receives fc1's rows in Keras's flat order."""
    layout = torch_init.to_torch_layout
    monkeypatch.setattr(torch_init, "to_torch_layout", lambda values, flattened, shape: layout(values, None, shape))
    package, torch_model, keras_model = loaded_pair("lenet5", SEED)
    unequal = [
        p.label
        for p in tensor_pairs(torch_model, keras_model)
        if not np.array_equal(torch_array(p), p.keras_variable.numpy())
    ]
    assert unequal == ["fc1.kernel"]
    torch_out, keras_out = eval_outputs(package, torch_model, keras_model)
    assert np.abs(torch_out - keras_out).max() > 100 * EVAL_TOL
