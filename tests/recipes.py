"""Recipes for tests, with the DSL's defaults (they live in dsl only) and the given values."""

from compilers.lowering import lower_training
from dsl.training import Training
from runtime.common.recipe import Recipe

# The smallest valid spec: Flatten and a 10-way Dense, SGD with the DSL's defaults; tests append to its training.
SMALLEST_SPEC = """name: probe
input: [28, 28, 1]
layers:
  - Flatten: {}
  - Dense: {units: 10}
training:
  optimizer: {name: sgd}
"""


# Random erasing of every image; each draw fits an image of 2x2 pixels or more, so none is left whole.
ERASE_EVERY_IMAGE = {"probability": 1.0, "scale": [0.1, 0.2], "ratio": [0.5, 2.0], "value": 0.0}


def _lowered(optimizer: dict | None) -> dict:
    return lower_training(Training.model_validate({"optimizer": optimizer or {"name": "sgd"}}))


def full_optimizer(optimizer: dict) -> dict:
    """A partial optimizer section with the DSL's defaults filled in, as the runtime's optimizers take it."""
    return _lowered(optimizer)["optimizer"]


def make_recipe(optimizer: dict | None = None, **overrides) -> Recipe:
    """The default recipe with `optimizer` (a partial spec section, defaults filled in) and flat overrides."""
    return Recipe.from_dict(_lowered(optimizer) | overrides)


# TensorFlow computes two things in float32 whatever the model's type: its exact gelu multiplies by 1/sqrt(2) cast from
# a float32 constant (off by up to 5e-9, PyTorch's is exact to rounding), and its bilinear resize runs in float32. A few
# SGD steps carry that into the weights at about 1e-8.
TF_FLOAT32_INSIDE_TOL = 1e-7


def float32_inside_tensorflow(spec: dict) -> bool:
    """Whether a drawn spec uses gelu or bilinear upsampling, which TensorFlow computes in float32."""
    values = [args.get(key) for layer in spec["layers"] for args in layer.values() for key in ("activation", "name")]
    values += [args.get("interpolation") for layer in spec["layers"] for args in layer.values()]
    return "gelu" in values or "bilinear" in values
