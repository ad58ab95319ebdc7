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
}


def class_name(spec_name: str) -> str:
    """`mlp_adam` -> `MlpAdam`."""
    return "".join(part[:1].upper() + part[1:] for part in spec_name.split("_"))


def layer_names(kinds: list[str]) -> list[str]:
    """One name per layer, numbered within its kind from 1."""
    seen: Counter[str] = Counter()
    names = []
    for kind in kinds:
        seen[kind] += 1
        names.append(f"{ATTR_PREFIX[kind]}{seen[kind]}")
    return names
