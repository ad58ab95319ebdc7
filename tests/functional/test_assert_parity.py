"""fmnist_dsl.testing.assert_parity, the users' assertion: it passes on a correct package and names what breaks."""

from unittest import mock

import pytest

from fmnist_dsl.testing import assert_parity
from runtime.interop import weights
from tests.conftest import REPO


def test_a_spec_file_passes_with_every_figure_within_its_tolerance():
    figures = assert_parity(REPO / "specs" / "lenet5.yaml", trajectory_steps=5)
    assert [figure.ok for figure in figures] == [True] * 4 and figures[1].value <= 1e-5


def test_a_planted_flatten_order_bug_fails_with_the_figure_and_tolerance():
    with mock.patch.object(weights, "flattened_maps", lambda _model: {}), pytest.raises(AssertionError) as failure:
        assert_parity(REPO / "specs" / "lenet5.yaml", trajectory_steps=0)
    assert "eval forward, max absolute difference" in str(failure.value)
    assert "tolerance of 1.0e-05" in str(failure.value) and "from layer fc1" in str(failure.value)
