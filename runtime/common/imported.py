"""What `fmnist-dsl import` reads from a model file, whatever its framework: DSL layers, weights in the DSL's layout.

The readers (runtime/interop/importing/) each map their framework's layers to these through a table, one entry per
source layer type; a type or option the DSL cannot say is an ImportRefused naming the layer, its index and what is
missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# The DSL's activation functions (dsl.layers.Function), by the names the frameworks give them.
ACTIVATIONS = {
    "linear": "none",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "elu": "elu",
    "gelu": "gelu",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
}
# Layers whose `activation` argument an activation right after them can become.
TAKES_ACTIVATION = ("Dense", "Conv2D")
# The trained-model weights of each DSL layer kind, in the order of the package's WEIGHTS table.
BATCHNORM_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


class ImportRefused(ValueError):
    """A model the DSL cannot say, or a file that is not one; the message is the one line to print."""


@dataclass
class ImportedLayer:
    """One DSL layer: its kind, every argument written out, its weights in Keras's (the DSL's) layout."""

    kind: str
    arguments: dict
    source: str  # how the source names it: "layer 'conv1' (index 0, Conv2D)"
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ImportedModel:
    """A source model said in the DSL, its weights, and how to run the source itself for the proof."""

    source: str  # the file, as the header comment names it
    input_shape: tuple[int, int, int]
    layers: list[ImportedLayer]
    predict: Callable[[np.ndarray], np.ndarray]  # NHWC images in [0, 1] -> the source model's outputs
    notes: list[str] = field(default_factory=list)  # meanings the header comment states
    training_changes: list[str] = field(default_factory=list)  # what the DSL trains differently


def refuse(where: str, missing: str) -> ImportRefused:
    """The one-line refusal of a layer: where it is in the source and what the DSL lacks."""
    return ImportRefused(f"{where}: {missing}")


def activation(name: str, where: str) -> str:
    """The DSL's activation for a framework's name, or a refusal."""
    if name not in ACTIVATIONS:
        raise refuse(where, f"activation {name!r} is not one of the DSL's ({', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[name]


def add_activation(layers: list[ImportedLayer], name: str, where: str, fold: bool) -> None:
    """Append an activation: as the previous Dense or Conv2D's own `activation` when `fold` and it has none, else as
    an Activation layer. `none` (an identity) adds nothing."""
    if name == "none":
        return
    previous = layers[-1] if layers else None
    if (
        fold
        and previous is not None
        and previous.kind in TAKES_ACTIVATION
        and previous.arguments["activation"] == "none"
    ):
        previous.arguments["activation"] = name
        return
    layers.append(ImportedLayer("Activation", {"name": name}, where))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same` padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def padding_meaning(
    sizes: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    where: str,
) -> str:
    """`valid` or `same` for explicit (top, bottom, left, right) pads of a window over a (height, width) map."""
    if not any(pads):
        return "valid"
    same = [same_padding(n, k, s) for n, k, s in zip(sizes, kernel, stride)]
    if (pads[0], pads[1]) == same[0] and (pads[2], pads[3]) == same[1]:
        return "same"
    raise refuse(
        where,
        f"padding (top, bottom, left, right) {pads} is not TensorFlow's `same` {(*same[0], *same[1])} for this input "
        "and stride; an explicit ZeroPadding layer is not in the DSL yet",
    )


def dense_or_conv(kind: str, where: str, activation_name: str = "none", **arguments) -> ImportedLayer:
    """A Dense or Conv2D with the DSL's default initialisers unless the source names its own."""
    values = {"activation": activation_name, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    return ImportedLayer(kind, values | arguments, where)


class LayerChain:
    """The state of reading a chain of ops: the DSL layers so far, a pending explicit pad, the flattened map."""

    def __init__(self):
        self.layers, self.changes = [], []
        self.pad = None  # (top, bottom, left, right, fill value, (height, width) before the pad, where)
        self.flattened = None  # (height, width, channels) of the map a flatten made, until the next Dense

    def add(self, layer: ImportedLayer) -> None:
        if self.pad is not None:
            raise refuse(self.pad[-1], "an explicit pad not followed by a convolution or pooling: not in the DSL yet")
        self.layers.append(layer)

    def named_padding(self, where: str, padding: str) -> str:
        """A window's own `valid` or `same`; after an explicit pad it is not the DSL's."""
        if self.pad is not None:
            raise refuse(where, f"padding={padding!r} after an explicit pad is not in the DSL")
        return padding

    def window_padding(self, where: str, sizes, kernel, stride, pads: tuple[int, int, int, int], fill: float) -> str:
        """`valid` or `same` for a window's own (top, bottom, left, right) pads plus any explicit pad before it."""
        if self.pad is not None:
            *before, value, sizes, _ = self.pad
            self.pad = None
            if value != fill:
                raise refuse(where, f"a pad filled with {value} before it; the DSL pads this layer with {fill}")
            pads = tuple(a + b for a, b in zip(pads, before))
        return padding_meaning(sizes, kernel, stride, pads, where)
