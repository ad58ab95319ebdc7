"""A seed's initial weights, drawn with numpy from the spec's initialisers: one starting point for every framework.

Each framework draws from its own random stream, so without this the same seed started PyTorch and Keras (and each
Keras backend) from different weights; on LeNet-5 that alone moved test accuracy by up to 1.7 points. The
distributions are Keras's definitions, with Keras's fans (runtime.common.layouts gives the shapes' layout):
- glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out));
- he_uniform: U(-l, l), l = sqrt(6 / fan_in);
- he_normal: a normal of standard deviation sqrt(2 / fan_in) / 0.87962566103423978, truncated at two of its standard
  deviations (values outside are drawn again), so that the kept values have variance 2 / fan_in;
- zeros, ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dsl.tables import WeightRow

# The standard deviation of a unit normal truncated to [-2, 2]: Keras divides by it to keep the variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978
TRUNCATION = 2.0


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in Keras's layout, as Keras computes them."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """A normal of standard deviation `std`, every value outside two standard deviations drawn again."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > TRUNCATION
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > TRUNCATION
    return values * std


def draw(initializer: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One weight of `shape` (Keras's layout) from `initializer`, float32."""
    fan_in, fan_out = fans(shape)
    if initializer == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, shape)
    elif initializer == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        values = rng.uniform(-limit, limit, shape)
    elif initializer == "he_normal":
        values = truncated_normal(rng, shape, math.sqrt(2.0 / fan_in) / TRUNCATED_NORMAL_STD)
    elif initializer in ("zeros", "ones"):
        values = np.full(shape, 1.0 if initializer == "ones" else 0.0)
    else:
        raise ValueError(f"unknown initializer {initializer!r}")
    return values.astype(np.float32)


def initial_weights(rows: Iterable[WeightRow], seed: int) -> list[tuple[WeightRow, np.ndarray]]:
    """Each row with its initial values in Keras's layout; row i draws from the stream (seed, i) alone."""
    return [
        (row, draw(row.initializer, row.shape, np.random.default_rng([seed, index]))) for index, row in enumerate(rows)
    ]
