"""A Kolmogorov-Smirnov check of drawn weights against an initialiser's exact distribution (numpy and math only).

The exact distributions are Keras's definitions (keras/src/initializers/random_initializers.py): the uniform ones on
[-limit, limit]; he_normal a normal of standard deviation sqrt(2 / fan_in) / 0.87962566103423978, truncated at two of
those standard deviations. The p-value is Kolmogorov's limit distribution with Stephens' small-sample correction,
close enough for the sample sizes used here (thousands of values and more).
"""

import math
from collections.abc import Callable

import numpy as np

TRUNCATED_NORMAL_STD = 0.87962566103423978  # written out again: the tests check the runtime's copy, not reuse it
ALPHA = 1e-3  # a correct draw is rejected once in a thousand seeds; the seeds here are fixed

Cdf = Callable[[np.ndarray], np.ndarray]
_erf = np.vectorize(math.erf, otypes=[float])


def uniform_cdf(limit: float) -> Cdf:
    return lambda x: np.clip((x + limit) / (2 * limit), 0.0, 1.0)


def truncated_normal_cdf(std: float, bound: float = 2.0) -> Cdf:
    """A normal of standard deviation `std` kept on [-bound * std, bound * std]."""

    def phi(z):
        return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))

    low, high = phi(-bound), phi(bound)
    return lambda x: np.clip((phi(np.clip(x / std, -bound, bound)) - low) / (high - low), 0.0, 1.0)


def keras_cdf(initializer: str, fan_in: int, fan_out: int) -> Cdf:
    """The exact distribution Keras draws `initializer` from, for a weight with these fans."""
    if initializer == "glorot_uniform":
        return uniform_cdf(math.sqrt(6.0 / (fan_in + fan_out)))
    if initializer == "he_uniform":
        return uniform_cdf(math.sqrt(6.0 / fan_in))
    if initializer == "he_normal":
        return truncated_normal_cdf(math.sqrt(2.0 / fan_in) / TRUNCATED_NORMAL_STD)
    raise ValueError(f"no continuous distribution for {initializer!r}")


def ks_statistic(values: np.ndarray, cdf: Cdf) -> float:
    """sup |empirical CDF - cdf| over the sample."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    expected = cdf(x)
    above = np.arange(1, n + 1) / n - expected
    below = expected - np.arange(n) / n
    return float(max(above.max(), below.max()))


def ks_pvalue(statistic: float, n: int) -> float:
    """P(D >= statistic) for a sample of n from the hypothesised distribution."""
    x = statistic * (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n))
    if x < 0.2:
        return 1.0
    tail = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x) for k in range(1, 101))
    return min(max(tail, 0.0), 1.0)


def fits(values: np.ndarray, cdf: Cdf) -> bool:
    """Whether the KS test accepts `values` as a sample of `cdf` at level ALPHA."""
    return ks_pvalue(ks_statistic(values, cdf), np.asarray(values).size) >= ALPHA
