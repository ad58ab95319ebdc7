"""compare's statistics in numpy: agreement of two models' predictions, Student's t, Welch's test on seeds."""

import math

import numpy as np
import pytest

from runtime.interop.comparison import (
    agreement,
    commonest_pairs,
    per_class_accuracy,
    regularized_incomplete_beta,
    t_two_sided_p,
    welch,
)

# Two-sided 5% critical values of Student's t from the printed tables (1e6 degrees of freedom: the normal's 1.960).
CRITICAL_5_PERCENT = ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042), (1e6, 1.960))


@pytest.mark.parametrize(("df", "t"), CRITICAL_5_PERCENT)
def test_t_p_value_is_five_percent_at_the_tables_critical_values(df, t):
    assert t_two_sided_p(t, df) == pytest.approx(0.05, abs=2e-4)  # the tables round t to 3 decimals
    assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


def test_t_p_value_at_the_extremes():
    assert t_two_sided_p(0.0, 3) == 1.0
    assert t_two_sided_p(math.inf, 3) == 0.0
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| >= 1) = 1/2 exactly


@pytest.mark.parametrize("x", [0.01, 0.3, 0.5, 0.77, 0.99])
def test_incomplete_beta_against_its_closed_forms(x):
    assert regularized_incomplete_beta(1, 1, x) == pytest.approx(x, rel=1e-12)
    assert regularized_incomplete_beta(3.5, 1, x) == pytest.approx(x**3.5, rel=1e-10)
    assert regularized_incomplete_beta(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, rel=1e-10)
    assert regularized_incomplete_beta(2.3, 7.1, x) == pytest.approx(1 - regularized_incomplete_beta(7.1, 2.3, 1 - x))


def test_welch_matches_a_reference_computation():
    """t, Welch-Satterthwaite df and p as scipy.stats.ttest_ind(equal_var=False) gives them for these values."""
    result = welch([0.8512, 0.8487, 0.8530, 0.8498], [0.8431, 0.8476, 0.8402])
    assert result.t == pytest.approx(3.0034680681455708, rel=1e-12)
    assert result.df == pytest.approx(2.7500154411903104, rel=1e-12)
    assert result.p == pytest.approx(0.06422231639029372, rel=1e-9)
    assert result.within_noise  # p = 0.064: with so few seeds, not beyond the noise at 5%
    assert result.gap == pytest.approx(np.mean([0.8512, 0.8487, 0.8530, 0.8498]) - np.mean([0.8431, 0.8476, 0.8402]))


def test_welch_tells_a_real_gap_from_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(0.85, 0.002, 5)
    assert not welch(base + 0.02, base + rng.normal(0, 0.002, 5)).within_noise  # a 2-point gap, 0.2-point noise
    assert welch(base, base[::-1] + rng.normal(0, 0.002, 5)).within_noise  # the same distribution


def test_welch_without_spread_and_with_too_few_seeds():
    assert welch([0.8, 0.8], [0.8, 0.8]).p == 1.0
    assert not welch([0.8, 0.8], [0.7, 0.7]).within_noise
    with pytest.raises(ValueError, match="two or more seeds"):
        welch([0.8], [0.7, 0.71])


def test_agreement_shares_by_class_and_pairs():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    first = np.array([0, 0, 1, 2, 1, 1, 2, 2, 0, 0])
    second = np.array([0, 1, 1, 1, 1, 2, 2, 2, 1, 1])
    result = agreement(labels, first, second)
    assert result.share == pytest.approx(0.5)  # positions 1, 3, 5, 8 and 9 differ
    assert result.by_class[:3] == pytest.approx([0.5, 0.5, 0.5])
    assert np.isnan(result.by_class[3:]).all()  # no image of those classes
    assert result.table.sum() == 5 and result.table[0, 1] == 3 and result.table[2, 1] == 1
    assert commonest_pairs(result.table) == [(0, 1, 3), (1, 2, 1), (2, 1, 1)]
    assert commonest_pairs(np.zeros((10, 10), dtype=int)) == []


def test_per_class_accuracy_is_each_class_recall():
    labels = np.array([0, 0, 1, 1, 1, 3])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    accuracy = per_class_accuracy(labels, predicted)
    assert accuracy[[0, 1, 3]] == pytest.approx([0.5, 2 / 3, 0.0])
    assert np.isnan(accuracy[2]) and len(accuracy) == 10
