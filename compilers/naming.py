"""Names in generated code: classes from spec names, numbered submodules per layer kind."""

from collections import Counter

# The attribute prefix of each DSL layer kind, as in pytorch/examples (conv1, fc2, ...).
ATTR_PREFIX = {
    "Conv2D": "conv",
    "MaxPool": "pool",
    "Dense": "fc",
    "BatchNorm": "bn",
    "Dropout": "dropout",
    "Flatten": "flatten",
    "Activation": "act",
    "AvgPool": "avgpool",
    "GlobalAvgPool": "gap",
    "GlobalMaxPool": "gmp",
    "ZeroPadding": "zeropad",
    "UpSampling": "upsample",
    "LayerNorm": "ln",
    "DepthwiseConv2D": "dwconv",
    "SeparableConv2D": "sepconv",
    "Residual": "res",
}


def class_name(spec_name: str) -> str:
    """`mlp_adam` -> `MlpAdam`."""
    return "".join(part[:1].upper() + part[1:] for part in spec_name.split("_"))


def layer_names(kinds: list[str], within: str = "") -> list[str | None]:
    """One name per layer of a list, numbered within its kind from 1; a Residual's layers (`within` it) take its name
    first, so that every layer, however deeply nested, is one flat submodule: res1_conv1, res1_res1_bn1. An Activation
    layer's is None here: it is an activation submodule's name (Activations)."""
    prefix = f"{within}_" if within else ""
    seen: Counter[str] = Counter()
    names = []
    for kind in kinds:
        seen[kind] += 1
        names.append(None if kind == "Activation" else f"{prefix}{ATTR_PREFIX[kind]}{seen[kind]}")
    return names


class Activations:
    """The names of the activation submodules, asked for in `forward` order: every one is an `act<n>`, as timm names
    them beside conv1 and bn1, an Activation layer's and a layer's own (a Dense's, convolution's or Residual's
    `activation=`) alike, so `act<n>` is the n-th activation in `forward`, Residuals' blocks included (an Activation
    layer keeps its name in Keras too)."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"{ATTR_PREFIX['Activation']}{self.count}"


def projection_names(residual: str) -> tuple[str, str]:
    """A projection shortcut's Conv2D and BatchNorm."""
    return f"{residual}_proj", f"{residual}_proj_bn"


def shortcut_variable(depth: int) -> str:
    """The local variable holding a Residual's shortcut in the generated code: one per nesting depth."""
    return "shortcut" if depth == 0 else f"shortcut{depth + 1}"
