"""Unit tier: the runtime's definitions as the standalone templates print them (compilers/standalone.py)."""

import pytest

from compilers.standalone import source_of


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
