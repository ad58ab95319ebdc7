"""Generated layer calls print only what the spec chose: no argument that repeats its framework's default, except
those whose defaults differ between the frameworks (BatchNorm's and LayerNorm's epsilon and momentum)."""

import re
from types import SimpleNamespace

import pytest

from compilers.render import KERAS_DEFAULTS, TORCH_DEFAULTS, chosen_args, environment
from tests.conftest import REPO

MODEL_FILES = sorted(REPO.glob("generated/**/*_model.py"))
DEFAULT_SPELLINGS = [f"{name}={value!r}" for name, value in (KERAS_DEFAULTS | TORCH_DEFAULTS).items()]
DEFAULT_SPELLINGS = [spelling.replace("'", '"') for spelling in DEFAULT_SPELLINGS] + ["activation=None"]


def test_defaults_are_left_out_and_choices_kept():
    assert chosen_args(TORCH_DEFAULTS, {"stride": (1, 1), "padding": (2, 2), "bias": True}) == ", padding=(2, 2)"
    keras = {"strides": (2, 2), "padding": "valid", "activation": None, "use_bias": False, "bias_initializer": None}
    assert chosen_args(KERAS_DEFAULTS, keras) == ", strides=(2, 2), use_bias=False"


@pytest.mark.parametrize("path", MODEL_FILES, ids=[str(p.relative_to(REPO / "generated")) for p in MODEL_FILES])
def test_no_generated_model_repeats_a_default(path):
    text = path.read_text()
    assert not [spelling for spelling in DEFAULT_SPELLINGS if re.search(re.escape(spelling) + r"(?![\w.])", text)]


def test_the_check_sees_a_default_spelled_out():
    assert "stride=(1, 1)" in DEFAULT_SPELLINGS and 'bias_initializer="zeros"' in DEFAULT_SPELLINGS
    assert not re.search(re.escape("groups=1") + r"(?![\w.])", "nn.Conv2d(16, 16, 3, groups=16)")
    assert len(MODEL_FILES) >= 28  # the installed and the standalone packages of the 7 example specs


def test_a_pools_strides_are_left_out_only_where_they_are_its_size():
    """A pool's default strides are its size, not 1: strides (1, 1) under a 3x3 pool must be printed."""
    pool_strides = environment().globals["pool_strides"]
    assert pool_strides(SimpleNamespace(strides=(1, 1), pool_size=(3, 3)), "stride") == ", stride=(1, 1)"
    assert pool_strides(SimpleNamespace(strides=(2, 2), pool_size=(2, 2)), "strides") == ""
