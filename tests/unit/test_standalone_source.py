"""Unit tier: the runtime's definitions as the standalone templates print them (compilers/standalone.py)."""

import pytest

from compilers.standalone import runtime_source


def test_a_definition_comes_with_its_decorators_and_the_comment_above_it():
    assert runtime_source("torch/init.py", "he_normal_").startswith("@torch.no_grad()\ndef he_normal_(")
    assert runtime_source("common/data.py", "CHECKSUMS").startswith("# name -> (MD5 of the official .gz")


def test_constants_follow_each_other_and_definitions_stand_apart():
    assert runtime_source("common/constants.py", "EVAL_BATCH", "LOSS_EPSILON").count("\n") == 1
    assert "\n\n\ndef fans(" in runtime_source("common/initial_weights.py", "TRUNCATION", "fans")


def test_unqualify_drops_a_module_alias_the_package_does_not_have():
    plain = runtime_source("common/recipe.py", "augment")
    assert "fmnist.random_flip_horizontal(batch, rng)" in plain
    text = runtime_source("common/recipe.py", "augment", unqualify="fmnist")
    assert "fmnist." not in text and text == plain.replace("fmnist.", "")


def test_an_unknown_name_is_an_error_naming_it():
    with pytest.raises(KeyError, match="runtime/common/data.py defines no nothing_here"):
        runtime_source("common/data.py", "batch_order", "nothing_here")
