"""Recipes for tests, with the DSL's defaults (they live in dsl only) and the given values."""

from compilers.lowering import lower_training
from dsl.training import Training
from runtime.common.recipe import Recipe


def make_recipe(optimizer: dict | None = None, **overrides) -> Recipe:
    """The default recipe with `optimizer` (a partial spec section, defaults filled in) and flat overrides."""
    training = Training.model_validate({"optimizer": optimizer or {"name": "sgd"}})
    return Recipe.from_dict(lower_training(training) | overrides)
