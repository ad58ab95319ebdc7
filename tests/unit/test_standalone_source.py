"""Unit tier: the runtime's definitions as the standalone templates print them (compilers/standalone.py)."""

import dataclasses
import importlib.util
import sys

import numpy as np
import pytest

from compilers.standalone import source_of
from runtime.common.recipe import Recipe, augment
from tests.conftest import REPO


def test_a_definition_comes_with_its_decorators_and_the_comment_above_it():
    assert source_of("runtime/torch/init.py", "he_normal_").startswith("@torch.no_grad()\ndef he_normal_(")
    assert source_of("runtime/common/data.py", "CHECKSUMS").startswith("# name -> (MD5 of the official .gz")


def test_constants_follow_each_other_and_definitions_stand_apart():
    assert source_of("runtime/common/constants.py", "EVAL_BATCH", "LOSS_EPSILON").count("\n") == 1
    assert "\n\n\ndef fans(" in source_of("runtime/common/initial_weights.py", "TRUNCATION", "fans")


def test_unqualify_drops_a_module_alias_the_package_does_not_have():
    plain = source_of("runtime/common/recipe.py", "augment")
    assert "fmnist.random_flip_horizontal(batch, rng)" in plain
    text = source_of("runtime/common/recipe.py", "augment", unqualify="fmnist")
    assert "fmnist." not in text and text == plain.replace("fmnist.", "")


def test_an_unknown_name_is_an_error_naming_it():
    with pytest.raises(KeyError, match="runtime/common/data.py defines no nothing_here"):
        source_of("runtime/common/data.py", "batch_order", "nothing_here")


def test_the_standalone_augmentation_erases_as_the_runtime_does(monkeypatch):
    """resnet's standalone shared.py (flip, shift and random erasing) augments a batch as the installed runtime does,
    for the same (seed, epoch, batch index): the copy the template printed has the same meaning."""
    spec = importlib.util.spec_from_file_location("resnet_shared", REPO / "generated/standalone/resnet/shared.py")
    shared = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, shared)  # its dataclasses look their module up there
    spec.loader.exec_module(shared)
    recipe = Recipe.from_dict(shared.RECIPE)
    batch = np.random.default_rng(0).uniform(0.5, 1.0, (64, 28, 28, 1)).astype(np.float32)
    for epoch, index in ((0, 0), (3, 7)):
        theirs = augment(batch, recipe, epoch, index)
        mine = shared.augment(batch, shared.Recipe.from_dict(shared.RECIPE), epoch, index)
        np.testing.assert_array_equal(mine, theirs)
        unerased = augment(batch, dataclasses.replace(recipe, random_erasing=None), epoch, index)
        assert not np.array_equal(theirs, unerased), "nothing erased: the comparison would not see a wrong erasing"
