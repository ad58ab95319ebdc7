"""Both frameworks draw initial weights from the same distribution: spread and bounds agree."""

import math

import numpy as np
import pytest

SPEC = """
name: init_{init}
input: [12, 12, 8]
layers:
  - Conv2D: {{filters: 64, kernel_size: 3, kernel_initializer: {init}, bias_initializer: {bias}}}
  - Flatten: {{}}
  - Dense: {{units: 300, kernel_initializer: {init}, bias_initializer: {bias}}}
"""
# (fan_in, fan_out) of each kernel as Keras computes it.
FANS = {"conv1": (3 * 3 * 8, 3 * 3 * 64), "fc1": (10 * 10 * 64, 300)}
EXPECTED_STD = {
    "glorot_uniform": lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),
    "he_uniform": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),
    "he_normal": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),
}


def kernels(package) -> dict[str, dict[str, np.ndarray]]:
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    return {
        name: {
            "torch": getattr(torch_model, name).weight.detach().numpy().ravel(),
            "keras": np.asarray(keras_model.get_layer(name).kernel).ravel(),
        }
        for name in FANS
    }


@pytest.mark.parametrize("init", sorted(EXPECTED_STD))
def test_kernel_distributions_match(build_package, init):
    package = build_package(SPEC.format(init=init, bias="zeros"))
    for name, drawn in kernels(package).items():
        std = EXPECTED_STD[init](*FANS[name])
        bound = 2 * std / 0.87962566103423978 if init == "he_normal" else math.sqrt(3) * std
        for framework, values in drawn.items():
            assert values.std() == pytest.approx(std, rel=0.05), (name, framework)
            assert np.abs(values).max() <= bound * (1 + 1e-6), (name, framework)
            assert np.abs(values).max() >= 0.9 * bound, (name, framework)


def test_non_zero_bias_initialiser_uses_the_same_one_dimensional_fans(build_package):
    package = build_package(SPEC.format(init="zeros", bias="he_uniform"))
    torch_bias = package.build_torch_model().fc1.bias.detach().numpy()
    keras_bias = np.asarray(package.build_keras_model().get_layer("fc1").bias)
    limit = math.sqrt(6.0 / 300)
    for values in (torch_bias, keras_bias):
        assert np.abs(values).max() <= limit and np.abs(values).max() > 0.8 * limit
