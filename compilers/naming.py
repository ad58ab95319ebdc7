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


def layer_names(kinds: list[str], own_activation: list[bool]) -> list[tuple[str, str | None]]:
    """Per layer, its name, numbered within its kind from 1, and the PyTorch submodule of its own activation (a
    Dense's or Conv2D's `activation=`; None without one).

    Every activation submodule is an `act<n>`, as timm names them beside conv1 and bn1: an Activation layer's and a
    layer's own share one count, so `act<n>` is the n-th activation in `forward` (an Activation layer keeps its name
    in Keras too).
    """
    seen: Counter[str] = Counter()
    names = []
    for kind, has_activation in zip(kinds, own_activation, strict=True):
        seen[kind] += 1
        name = f"{ATTR_PREFIX[kind]}{seen[kind]}"
        if has_activation:
            seen["Activation"] += 1
        names.append((name, f"{ATTR_PREFIX['Activation']}{seen['Activation']}" if has_activation else None))
    return names
