"""What `fmnist-dsl compare` measures beyond two accuracies: whether the two trained models agree, image by image
and class by class, and whether the gap between the frameworks stands out from seed-to-seed noise.

The statistics are numpy and the standard library; only `predicted_classes` loads a framework (call
`runtime.common.frameworks.guard_triton()` in the calling process before anything loads TensorFlow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.common.constants import NUM_CLASSES

ALPHA = 0.05  # the two-sided level at which a gap counts as larger than the seed-to-seed noise


def predicted_classes(package, run_dir: Path, images: np.ndarray) -> np.ndarray:
    """The classes a finished run's saved model gives `images`, predicted in the framework that trained it."""
    from runtime.interop import export

    return export.predict(export.source_framework(run_dir), export.load_trained(package, run_dir), images).argmax(1)


def per_class_accuracy(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The share of each class's images given their own class (recall), NaN for a class with no images."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    hits = np.bincount(labels[predicted == labels], minlength=NUM_CLASSES)
    return np.divide(hits, counts, out=np.full(NUM_CLASSES, np.nan), where=counts > 0)


@dataclass(frozen=True)
class Agreement:
    """How often two models give an image the same class: overall, per true class, and by pair of classes."""

    share: float  # images given the same class by both
    by_class: np.ndarray  # per true class: the share of its images the two models classify differently
    table: np.ndarray  # [first model's class, second model's class]: images they classify differently so


def agreement(labels: np.ndarray, first: np.ndarray, second: np.ndarray) -> Agreement:
    """Agreement of two models' predicted classes on the same images."""
    differ = first != second
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    split = np.bincount(labels[differ], minlength=NUM_CLASSES)
    by_class = np.divide(split, counts, out=np.full(NUM_CLASSES, np.nan), where=counts > 0)
    table = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(table, (first[differ], second[differ]), 1)
    return Agreement(float(1.0 - differ.mean()), by_class, table)


def commonest_pairs(table: np.ndarray, top: int = 5) -> list[tuple[int, int, int]]:
    """(first model's class, second model's class, images) of a disagreement table, most frequent first."""
    order = np.argsort(-np.asarray(table), axis=None, kind="stable")[:top]
    rows, cols = np.unravel_index(order, np.shape(table))
    return [(int(a), int(b), int(table[a][b])) for a, b in zip(rows, cols) if table[a][b]]


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (Lentz's method), as in Numerical Recipes' betai."""
    if x <= 0.0 or x >= 1.0:
        return float(x >= 1.0)
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - regularized_incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for numerator in (even, odd):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * fraction / a


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class SeedNoise:
    """Welch's t-test of two frameworks' per-seed accuracies: is their gap larger than the spread across seeds?"""

    means: tuple[float, float]
    stds: tuple[float, float]  # sample standard deviations (ddof 1) across seeds
    gap: float  # first mean minus second
    t: float
    df: float
    p: float  # two-sided
    within_noise: bool  # p >= ALPHA: a gap this large is common between seeds of one framework


def welch(first: np.ndarray, second: np.ndarray) -> SeedNoise:
    """Welch's unequal-variance t-test; needs at least two values on each side."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if min(len(first), len(second)) < 2:
        raise ValueError(f"Welch's t needs two or more seeds per framework, received {len(first)} and {len(second)}")
    (m1, m2), (v1, v2) = (first.mean(), second.mean()), (first.var(ddof=1), second.var(ddof=1))
    s1, s2 = v1 / len(first), v2 / len(second)
    gap = float(m1 - m2)
    if s1 + s2 == 0.0:  # no spread at all: any gap is a real one, none is no gap
        t, df = (math.inf if gap else 0.0), float(len(first) + len(second) - 2)
    else:
        t = gap / math.sqrt(s1 + s2)
        df = (s1 + s2) ** 2 / (s1**2 / (len(first) - 1) + s2**2 / (len(second) - 1))  # Welch-Satterthwaite
    p = float(t_two_sided_p(t, df))
    stds = (float(math.sqrt(v1)), float(math.sqrt(v2)))
    return SeedNoise((float(m1), float(m2)), stds, gap, float(t), float(df), p, p >= ALPHA)
